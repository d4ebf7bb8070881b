#include "framework/comm/StallMonitor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "framework/base/Activity.h"
#include "framework/base/Log.h"
#include "framework/base/System.h"
#include "framework/base/Watchdog.h"
#include "framework/comm/Communicator.h"

namespace gentrain {

// Note [stall monitor]
// A rank that hangs leaves the others in a collective, and a collective cannot say who is
// missing. So each rank tells rank 0, out of band, what it is doing: a heartbeat every 200 ms on
// a TCP connection of its own (not MPI: the training thread may be inside MPI, and a second MPI
// communicator would need MPI_THREAD_MULTIPLE on the training path). A heartbeat carries the
// rank's phase, step, wait and bucket with their ages, its slowest recent step and its clock.
// Rank 0's monitor thread answers each one with its own activity and clock, which gives every
// rank rank 0's state and clock offset (for the trace), and judges the whole job ten times a
// second (stallVerdict). A rank stopped by SIGSTOP or cut off stops beating: it is named as
// silent; one whose process ended closes its connection: named as gone. If rank 0 itself is
// silent while a rank waits, that rank ends the job naming rank 0. The records are raw structs:
// the ranks of one job run one build on one architecture.
//
// Note [stall bound]
// Ranks in a collective wait for the others; the others are "laggards": elsewhere, or silent.
// The job ends when the longest collective wait exceeds a laggard's bound. A laggard in a
// training step (data, forward, backward, optimizer, between steps) gets the bound learned from
// the run: max(runtime.stall_floor_s, runtime.stall_factor x the slowest of every rank's recent
// steps), at most runtime.timeout_s. Phases that are legitimately long (start-up, checkpoint,
// evaluation, sampling, writing logs) and the first steps (fewer than three seen since start,
// or since a network grew: NetworkSet::addOptimizer replacing an optimizer resets the count)
// get runtime.timeout_s. A laggard counts from when it entered its phase (or fell silent), not
// from when the others began to wait. A silent rank gets the learned bound whatever its phase
// (three floors before steps are learned): its process is not running, whatever it was doing. A
// gone rank (its connection closed without the goodbye every orderly exit sends, errors included)
// ends the job at once, whoever waits: its process is dead, and nothing it was part of can finish.
// On many nodes that is a lost node, and the verdict names its host and all its ranks before
// the launcher's own message (which names the host only) and its kill arrive. Every
// rank in a collective and none elsewhere is a network problem or a mismatch: the watchdog's
// timeout_s names the wait.

namespace {

// Heartbeats: every kBeatSeconds, whatever the rank does. A rank that hangs goes on beating
// where it hangs; only one that stops (SIGSTOP, a dead host) is last seen up to a beat before it
// stopped. Faster beats cost more than their CPU time: on a machine whose cores all compute, each
// wake-up delays a rank, and in data parallel every rank then waits for it. Measured with
// launch/bench/monitor-cost.sh (default VAE, 2 ranks on 2 cores): beats every 10 ms while steps
// ran cost +3% (whole runs, median) and 1.8% in the monitor thread's CPU alone; every 50 ms
// +2.7..5.6% and 0.5%; every 200 ms +0.8% and 0.16%. Rank 0 takes world x 5 beats a second.
constexpr double kBeatSeconds = 0.2;
constexpr double kSilentSeconds = 2.0;
// A lost host takes all its ranks at once, but their connections close one after the other:
// the verdict waits this long after the first, so that it names them all.
constexpr double kLostGraceSeconds = 0.3;
constexpr uint32_t kMagic = 0x67745354;  // "gtST"

struct Beat {
  uint32_t magic = kMagic;
  int32_t rank = 0;
  int64_t step = 0;
  int64_t stepsSeen = 0;
  double phaseSeconds = 0;
  double waitSeconds = 0;
  double slowestStep = 0;
  double sentAt = 0;  // the sender's monotonic clock
  double echo = 0;    // replies: the sentAt they answer
  double bound = 0;   // replies: rank 0's current learned bound (0: none yet)
  int32_t bucket = -1;
  uint8_t phase = 0;
  uint8_t collective = 0;
  uint8_t bye = 0;
  uint8_t pad = 0;
  char wait[64] = {};
};

Beat beatNow(int rank) {
  const ActivitySnapshot a = activity::snapshot();
  Beat b;
  b.rank = rank;
  b.step = a.step;
  b.stepsSeen = activity::stepsSeen();
  b.phaseSeconds = a.phaseSeconds;
  b.waitSeconds = a.waitSeconds;
  b.slowestStep = activity::slowestRecentStep();
  b.sentAt = monotonicSeconds();
  b.bucket = a.bucket;
  b.phase = static_cast<uint8_t>(a.phase);
  b.collective = a.wait != nullptr && a.collective ? 1 : 0;
  if (a.wait != nullptr) std::strncpy(b.wait, a.wait, sizeof(b.wait) - 1);
  return b;
}

RankView viewOf(const Beat& b, const std::string& host, double age) {
  RankView v;
  v.rank = b.rank;
  v.host = host;
  v.phase = b.phase;
  v.step = b.step;
  v.phaseSeconds = b.phaseSeconds + age;
  v.wait = b.wait;
  v.collective = b.collective != 0;
  v.bucket = b.bucket;
  v.waitSeconds = v.wait.empty() ? 0.0 : b.waitSeconds + age;
  v.silentSeconds = age;
  v.slowestStep = b.slowestStep;
  v.stepsSeen = b.stepsSeen;
  return v;
}

/// Sends all of `b` (blocking socket with a send timeout). False when the peer is gone.
bool sendBeat(int fd, const Beat& b) {
  const char* p = reinterpret_cast<const char*>(&b);
  std::size_t left = sizeof(b);
  while (left > 0) {
    const ssize_t n = ::send(fd, p, left, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return true;
}

/// Reads what is there into `buffer`; complete beats come out. False on EOF or error.
bool readBeats(int fd, std::string& buffer, std::vector<Beat>& out) {
  char chunk[4096];
  const ssize_t n = ::recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
  if (n == 0) return false;
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  buffer.append(chunk, static_cast<std::size_t>(n));
  while (buffer.size() >= sizeof(Beat)) {
    Beat b;
    std::memcpy(&b, buffer.data(), sizeof(Beat));
    buffer.erase(0, sizeof(Beat));
    if (b.magic != kMagic) return false;  // not ours: drop the connection
    b.wait[sizeof(b.wait) - 1] = '\0';
    out.push_back(b);
  }
  return true;
}

void setTimeouts(int fd) {
  timeval tv{1, 0};  // a full send buffer for a second: the peer is not reading
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/// This host's IPv4 addresses, loopback last.
std::vector<std::string> localAddresses() {
  std::vector<std::string> out, loopback;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return {"127.0.0.1"};
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    if ((a->ifa_flags & IFF_UP) == 0) continue;
    char text[INET_ADDRSTRLEN] = "";
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, text,
                sizeof(text));
    ((a->ifa_flags & IFF_LOOPBACK) ? loopback : out).push_back(text);
  }
  ::freeifaddrs(list);
  out.insert(out.end(), loopback.begin(), loopback.end());
  return out;
}

/// Connects to address:port within `seconds`; -1 on failure.
int connectTo(const std::string& address, int port, double seconds) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, address.c_str(), &to.sin_addr) != 1) return -1;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to));
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(seconds * 1000)) == 1) {
      int error = 0;
      socklen_t length = sizeof(error);
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
      rc = error == 0 ? 0 : -1;
    }
  }
  if (rc != 0) {
    ::close(fd);
    return -1;
  }
  ::fcntl(fd, F_SETFL, flags);
  setTimeouts(fd);
  return fd;
}

std::string describeWait(const RankView& v) {
  if (v.bucket >= 0) return log::cat("all-reduce bucket ", v.bucket);
  std::string what = v.wait;
  if (what.rfind("an ", 0) == 0) what = what.substr(3);
  return what;
}

std::string seconds1(double s) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << s;
  return out.str();
}

struct Monitor {
  std::mutex mutex;
  std::thread thread;
  std::atomic<bool> stopping{false};
  int rank = 0;
  int size = 1;
  StallOptions options;
  std::vector<std::string> hosts;  // by rank
  int listenFd = -1;
  int fd = -1;  // ranks > 0: the connection to rank 0
};

Monitor& monitor() {
  static Monitor m;
  return m;
}

void abortWith(const std::string& verdict) { Watchdog::abortJob("stall: " + verdict); }

/// Rank 0: accept, read, answer, judge.
void watchAll(Monitor& m) {
  struct Peer {
    std::string buffer;
    bool known = false;
    Beat last;
    double heardAt = 0;
    bool gone = false;
    double goneAt = 0;
  };
  std::map<int, Peer> connections;  // fd -> peer
  std::map<int, int> fdOfRank;
  std::vector<Peer> byRank(static_cast<std::size_t>(m.size));
  double lastJudged = 0;
  while (!m.stopping.load()) {
    std::vector<pollfd> fds{{m.listenFd, POLLIN, 0}};
    for (const auto& [fd, peer] : connections) fds.push_back({fd, POLLIN, 0});
    ::poll(fds.data(), fds.size(), 100);
    const double now = monotonicSeconds();
    if (fds[0].revents & POLLIN) {
      const int fd = ::accept4(m.listenFd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        setTimeouts(fd);
        connections[fd] = Peer{};
      }
    }
    for (std::size_t k = 1; k < fds.size(); ++k) {
      if ((fds[k].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const int fd = fds[k].fd;
      Peer& peer = connections[fd];
      std::vector<Beat> beats;
      const bool open = readBeats(fd, peer.buffer, beats);
      for (const Beat& b : beats) {
        if (b.rank <= 0 || b.rank >= m.size) continue;
        Peer& slot = byRank[static_cast<std::size_t>(b.rank)];
        slot.known = true;
        slot.last = b;
        slot.heardAt = now;
        slot.gone = false;
        fdOfRank[b.rank] = fd;
        Beat reply = beatNow(0);
        reply.echo = b.sentAt;
        if (!b.bye && !sendBeat(fd, reply)) break;
      }
      if (!open) {
        for (auto& [rank, rankFd] : fdOfRank) {
          if (rankFd != fd) continue;
          Peer& slot = byRank[static_cast<std::size_t>(rank)];
          if (!slot.last.bye) {
            slot.gone = true;
            slot.goneAt = now;
          }
          rankFd = -1;
        }
        ::close(fd);
        connections.erase(fd);
      }
    }
    if (now - lastJudged < 0.1) continue;
    lastJudged = now;
    std::vector<RankView> views;
    Beat self = beatNow(0);
    views.push_back(viewOf(self, m.hosts[0], 0));
    for (int r = 1; r < m.size; ++r) {
      const Peer& slot = byRank[static_cast<std::size_t>(r)];
      if (!slot.known) continue;  // never connected: the watchdog covers it
      RankView v = viewOf(slot.last, m.hosts[static_cast<std::size_t>(r)], now - slot.heardAt);
      if (slot.last.bye) v.phase = static_cast<int>(Phase::Finished), v.wait.clear();
      v.gone = slot.gone;
      v.goneSeconds = slot.gone ? now - slot.goneAt : 0;
      views.push_back(v);
    }
    const std::string verdict = stallVerdict(views, m.options);
    if (!verdict.empty()) abortWith(verdict);
  }
  for (const auto& [fd, peer] : connections) ::close(fd);
}

/// Ranks > 0: beat, read rank 0's replies, watch rank 0.
void beat(Monitor& m) {
  std::string buffer;
  Beat zero;  // rank 0's last reply
  double heardAt = monotonicSeconds();
  bool heard = false;
  double bestRtt = std::numeric_limits<double>::infinity();
  int samples = 0;
  double lastSent = 0;
  while (!m.stopping.load()) {
    const double now = monotonicSeconds();
    if (now - lastSent >= kBeatSeconds) {
      if (!sendBeat(m.fd, beatNow(m.rank))) return;  // rank 0 is gone: mpirun acts on that
      lastSent = now;
    }
    pollfd p{m.fd, POLLIN, 0};
    const double untilNext = lastSent + kBeatSeconds - monotonicSeconds();
    ::poll(&p, 1, std::max(1, static_cast<int>(untilNext * 1000)));
    std::vector<Beat> replies;
    if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && !readBeats(m.fd, buffer, replies)) return;
    const double received = monotonicSeconds();
    for (const Beat& b : replies) {
      zero = b;
      heardAt = received;
      heard = true;
      // Clock offset to rank 0 from the fastest round trip of the last hundred (Cristian):
      // rank 0 stamped sentAt somewhere inside the round trip, so the midpoint is off by at most
      // half of it.
      const double rtt = received - b.echo;
      if (++samples % 100 == 0) bestRtt = std::numeric_limits<double>::infinity();
      if (rtt < bestRtt) {
        bestRtt = rtt;
        activity::setClockOffset({b.sentAt - (b.echo + received) / 2, rtt / 2});
      }
    }
    if (!heard) continue;
    // Rank 0 judges everyone else; here only rank 0's silence is ours to judge.
    RankView self = viewOf(beatNow(m.rank), m.hosts[static_cast<std::size_t>(m.rank)], 0);
    RankView root = viewOf(zero, m.hosts[0], received - heardAt);
    if (root.silentSeconds < kSilentSeconds) continue;
    const std::string verdict = stallVerdict({self, root}, m.options);
    if (!verdict.empty()) abortWith(verdict);
  }
}

}  // namespace

namespace {

/// Note [stall bound]: gone ranks, by host: "lost ranks 2,3 (host node2): ...", or "".
std::string lostVerdict(const std::vector<RankView>& ranks) {
  std::vector<std::pair<std::string, std::vector<const RankView*>>> hosts;  // in rank order
  double longest = 0;
  for (const RankView& v : ranks) {
    if (!v.gone) continue;
    longest = std::max(longest, v.goneSeconds);
    auto it =
        std::find_if(hosts.begin(), hosts.end(), [&](const auto& h) { return h.first == v.host; });
    if (it == hosts.end()) it = hosts.insert(hosts.end(), {v.host, {}});
    it->second.push_back(&v);
  }
  if (hosts.empty() || longest < kLostGraceSeconds) return "";
  std::ostringstream out;
  out << "lost ";
  for (std::size_t h = 0; h < hosts.size(); ++h) {
    const auto& members = hosts[h].second;
    out << (h ? "; " : "") << (members.size() > 1 ? "ranks " : "rank ");
    for (std::size_t k = 0; k < members.size(); ++k) out << (k ? "," : "") << members[k]->rank;
    out << " (host " << hosts[h].first << ")";
  }
  const bool one = hosts.size() == 1 && hosts[0].second.size() == 1;
  out << (one ? ": its process ended" : ": their processes ended")
      << " without finishing (killed, crashed, or the host went down); ";
  for (std::size_t h = 0; h < hosts.size(); ++h) {
    for (const RankView* v : hosts[h].second) {
      out << "rank " << v->rank << " last seen in " << phaseName(static_cast<Phase>(v->phase));
      if (!v->wait.empty()) out << " (" << describeWait(*v) << ")";
      out << ", step " << v->step << "; ";
    }
  }
  out << "ending the job";
  return out.str();
}

}  // namespace

std::string stallVerdict(const std::vector<RankView>& ranks, const StallOptions& options) {
  const std::string lost = lostVerdict(ranks);
  if (!lost.empty()) return lost;
  const auto silent = [](const RankView& v) { return v.gone || v.silentSeconds >= kSilentSeconds; };
  const RankView* waiter = nullptr;
  double slowest = 0;
  long long seen = std::numeric_limits<long long>::max();
  for (const RankView& v : ranks) {
    slowest = std::max(slowest, v.slowestStep);
    if (silent(v)) continue;  // its count stopped when it did
    seen = std::min(seen, v.stepsSeen);
    if (!v.collective || v.wait.empty()) continue;
    if (waiter == nullptr || v.waitSeconds > waiter->waitSeconds) waiter = &v;
  }
  if (waiter == nullptr) return "";
  const double cap =
      options.hardCapSeconds > 0 ? options.hardCapSeconds : std::numeric_limits<double>::infinity();
  const bool learned = seen >= 3;
  const double learnedBound =
      std::min(cap, std::max(options.floorSeconds, options.factor * slowest));
  std::vector<std::string> named;
  double usedBound = 0;
  const char* why = "runtime.timeout_s";
  for (const RankView& v : ranks) {
    const bool quiet = silent(v);
    if (!quiet && v.collective && !v.wait.empty()) continue;  // waiting with the others
    const bool longPhase = isLongPhase(static_cast<Phase>(v.phase));
    const bool useLearned = learned && (quiet || !longPhase);
    const double bound = useLearned ? learnedBound
                         : quiet    ? std::min(cap, 3 * options.floorSeconds)
                                    : cap;
    // A laggard holds the others up only as long as it has been where it is: the waiters'
    // views are up to a heartbeat old, and one that has just moved on (a long checkpoint over,
    // the next step begun) is no culprit, however long the stale wait reads.
    const double stalled = std::min(waiter->waitSeconds, quiet ? v.silentSeconds : v.phaseSeconds);
    if (stalled < bound) continue;
    if (bound >= usedBound) {
      usedBound = bound;
      why = useLearned ? "learned"
            : quiet    ? "3 x runtime.stall_floor_s: steps not learned yet"
                       : "runtime.timeout_s";
    }
    std::ostringstream line;
    line << "rank " << v.rank << " (host " << v.host << ")";
    if (quiet) {
      line << " silent for " << seconds1(v.silentSeconds)
           << " s (stopped, or its host unreachable)";
    }
    line << (quiet ? ", last seen in " : " last seen in ")
         << phaseName(static_cast<Phase>(v.phase));
    if (!v.wait.empty()) line << " (" << describeWait(v) << ")";
    line << ", step " << v.step << ", " << seconds1(v.phaseSeconds) << " s ago";
    named.push_back(line.str());
  }
  if (named.empty()) return "";
  std::vector<int> waiting;
  for (const RankView& v : ranks) {
    if (!silent(v) && v.collective && !v.wait.empty()) waiting.push_back(v.rank);
  }
  std::ostringstream out;
  out << "stalled at step " << waiter->step << ", " << describeWait(*waiter) << " (rank"
      << (waiting.size() > 1 ? "s " : " ");
  for (std::size_t k = 0; k < waiting.size() && k < 8; ++k) {
    out << (k ? "," : "") << waiting[k];
  }
  if (waiting.size() > 8) out << ",...";
  out << " waiting " << seconds1(waiter->waitSeconds) << " s): ";
  for (std::size_t k = 0; k < named.size(); ++k) out << (k ? "; " : "") << named[k];
  out << "; ending the job (stall bound " << seconds1(usedBound) << " s";
  if (std::string(why) == "learned") {
    out << ": max(runtime.stall_floor_s, " << options.factor << " x the slowest recent step, "
        << std::setprecision(0) << std::fixed << slowest * 1000 << " ms)";
  } else {
    out << ": " << why;
  }
  out << ")";
  return out.str();
}

void StallMonitor::start(Communicator& comm, const StallOptions& options) {
  Monitor& m = monitor();
  if (comm.size() < 2 || m.thread.joinable()) return;
  m.rank = comm.rank();
  m.size = comm.size();
  m.options = options;
  m.hosts = comm.allGatherBytes(hostName());
  std::string where;
  if (m.rank == 0) {
    m.listenFd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in any{};
    any.sin_family = AF_INET;
    any.sin_addr.s_addr = htonl(INADDR_ANY);
    socklen_t length = sizeof(any);
    if (m.listenFd >= 0 && ::bind(m.listenFd, reinterpret_cast<sockaddr*>(&any), length) == 0 &&
        ::listen(m.listenFd, m.size) == 0 &&
        ::getsockname(m.listenFd, reinterpret_cast<sockaddr*>(&any), &length) == 0) {
      where = std::to_string(ntohs(any.sin_port));
      for (const std::string& address : localAddresses()) where += " " + address;
    } else {
      log::warn(log::cat("stall monitor: cannot listen (", std::strerror(errno),
                         "); stalls are caught by runtime.timeout_s only"));
    }
  }
  comm.broadcastBytes(where, 0);
  if (where.empty()) return;
  if (m.rank == 0) {
    m.thread = std::thread(watchAll, std::ref(m));
    return;
  }
  std::istringstream words(where);
  int port = 0;
  words >> port;
  std::vector<std::string> addresses;
  for (std::string a; words >> a;) addresses.push_back(a);
  if (m.hosts[0] == m.hosts[static_cast<std::size_t>(m.rank)]) {
    addresses.insert(addresses.begin(), "127.0.0.1");  // same host: loopback first
  }
  for (const std::string& address : addresses) {
    m.fd = connectTo(address, port, 3.0);
    if (m.fd >= 0) break;
  }
  if (m.fd < 0) {
    log::warn(log::cat("stall monitor: cannot reach rank 0 (host ", m.hosts[0], ") at port ", port,
                       " on ", where.substr(where.find(' ') + 1),
                       "; this rank's stalls are caught by runtime.timeout_s only"));
    return;
  }
  m.thread = std::thread(beat, std::ref(m));
}

double StallMonitor::cpuSeconds() {
  Monitor& m = monitor();
  if (!m.thread.joinable()) return 0;
  clockid_t clock;
  timespec t{};
  if (::pthread_getcpuclockid(m.thread.native_handle(), &clock) != 0 ||
      ::clock_gettime(clock, &t) != 0) {
    return 0;
  }
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

void StallMonitor::stop() {
  Monitor& m = monitor();
  if (!m.thread.joinable()) return;
  m.stopping.store(true);
  m.thread.join();
  if (m.fd >= 0) {
    Beat bye = beatNow(m.rank);
    bye.bye = 1;
    sendBeat(m.fd, bye);
    ::close(m.fd);
    m.fd = -1;
  }
  if (m.listenFd >= 0) ::close(m.listenFd);
  m.listenFd = -1;
}

}  // namespace gentrain
