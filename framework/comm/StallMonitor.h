#pragma once
/// @file Names the rank a stalled job waits for, in seconds (Note [stall monitor]).
///
/// Every rank publishes its activity (framework/base/Activity.h: phase, step, the wait it is in,
/// the gradient bucket) to rank 0 over a small TCP side channel, out of band from the training
/// collectives, five times a second. Rank 0 watches: when ranks have waited in a collective for
/// longer than the stall bound while another rank is elsewhere, or silent, it ends the job with
/// one line that names that rank, its host, its phase and step, and how long ago it got there.
/// The other ranks watch rank 0 the same way through its replies. The watchdog's
/// `runtime.timeout_s` stays the hard cap for everything else.

#include <string>
#include <vector>

namespace gentrain {

class Communicator;

struct StallOptions {
  double floorSeconds = 5;      ///< runtime.stall_floor_s
  double factor = 10;           ///< runtime.stall_factor
  double hardCapSeconds = 300;  ///< runtime.timeout_s (<= 0: no cap, long phases never time out)
};

/// One rank as the monitor sees it (for the message; pure, so tests can build them).
struct RankView {
  int rank = 0;
  std::string host;
  int phase = 0;  ///< a gentrain::Phase
  long long step = 0;
  double phaseSeconds = 0;
  std::string wait;  ///< "" when not waiting
  bool collective = false;
  int bucket = -1;
  double waitSeconds = 0;
  double silentSeconds = 0;  ///< since its last heartbeat
  bool gone = false;         ///< its connection closed
  double goneSeconds = 0;    ///< since it closed
  double slowestStep = 0;    ///< its slowest recent step, seconds
  long long stepsSeen = 0;
};

/// The monitor's decision over every rank's view (Note [stall bound]): empty when the job is
/// healthy, else the one-line reason to end it.
std::string stallVerdict(const std::vector<RankView>& ranks, const StallOptions& options);

class StallMonitor {
 public:
  /// Collective over `comm` (host path): rank 0 listens, the others connect and start their
  /// heartbeats. Does nothing on one rank. A rank that cannot reach rank 0 says so and goes on
  /// (the watchdog still covers it).
  static void start(Communicator& comm, const StallOptions& options);
  /// Says goodbye to rank 0 and stops (at exit).
  static void stop();
  /// CPU seconds this rank's monitor thread has used (0 when it is not running): its share of
  /// the step is what the heartbeats cost (launch/bench/monitor-cost.sh).
  static double cpuSeconds();
};

}  // namespace gentrain
