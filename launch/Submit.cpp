#include "launch/Submit.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "framework/base/Error.h"
#include "framework/base/Files.h"
#include "framework/base/Log.h"
#include "framework/tracking/RunDirectory.h"
#include "launch/Supervise.h"

namespace gentrain {
namespace fs = std::filesystem;

namespace {

/// `text` as one word for bash: single-quoted unless it is plainly safe.
std::string quote(const std::string& text) {
  const bool plain =
      !text.empty() &&
      text.find_first_not_of(
          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-./=:,+@%") ==
          std::string::npos;
  if (plain) return text;
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string joinQuoted(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) out += (out.empty() ? "" : " ") + quote(w);
  return out;
}

/// Values that go into #SBATCH lines: names and times only.
void requireWord(const std::string& option, const std::string& value, const char* allowed,
                 const std::string& example) {
  if (!value.empty() && value.find_first_not_of(allowed) != std::string::npos) {
    throw UsageError("submit: " + option + " '" + value +
                     "' has characters Slurm does not "
                     "take there; expected something like " +
                     example);
  }
}

std::string nowText() {
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  return stamp;
}

}  // namespace

std::string selfPath() {
  char buffer[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
  if (n <= 0) throw UsageError("cannot find this program's path (/proc/self/exe)");
  return std::string(buffer, static_cast<std::size_t>(n));
}

namespace {

bool validHostName(const std::string& name) {
  return !name.empty() && name.front() != '-' &&
         name.find_first_not_of(
             "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_") ==
             std::string::npos;
}

/// "2" -> 2; anything but a whole number from 1 to 4096 -> 0.
int slotCount(const std::string& text) {
  if (text.empty() || text.size() > 4 ||
      text.find_first_not_of("0123456789") != std::string::npos) {
    return 0;
  }
  const int n = std::stoi(text);
  return n >= 1 && n <= 4096 ? n : 0;
}

}  // namespace

std::vector<HostSlots> parseHostList(const std::string& text) {
  std::vector<HostSlots> hosts;
  std::istringstream in(text);
  for (std::string entry; std::getline(in, entry, ',');) {
    const std::size_t colon = entry.find(':');
    HostSlots h{entry.substr(0, colon), 1};
    if (colon != std::string::npos) h.slots = slotCount(entry.substr(colon + 1));
    if (!validHostName(h.name) || h.slots == 0) {
      throw UsageError("launch: --hosts entry '" + entry +
                       "' is not NAME or NAME:RANKS (RANKS a whole number from 1 to 4096); "
                       "write e.g. --hosts node1:2,node2:2");
    }
    hosts.push_back(h);
  }
  if (hosts.empty())
    throw UsageError("launch: --hosts is empty; write e.g. --hosts node1:2,node2:2");
  return hosts;
}

std::vector<HostSlots> parseHostfile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    throw UsageError("launch: cannot read the hostfile " + path + " (" + std::strerror(errno) +
                     "); write one host a line: NAME slots=RANKS");
  }
  std::vector<HostSlots> hosts;
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    line = line.substr(0, line.find('#'));
    std::istringstream words(line);
    std::string name, word;
    if (!(words >> name)) continue;
    HostSlots h{name, 1};
    bool ok = validHostName(name);
    while (ok && (words >> word)) {
      const std::size_t eq = word.find('=');
      const std::string key = word.substr(0, eq);
      const int n = eq == std::string::npos ? 0 : slotCount(word.substr(eq + 1));
      if (key == "slots" && n > 0) {
        h.slots = n;
      } else if (key != "max_slots" || n == 0) {
        ok = false;
      }
    }
    if (!ok) {
      throw UsageError(log::cat("launch: ", path, " line ", number, " ('", line,
                                "') is not NAME [slots=RANKS] [max_slots=N]; fix or remove it"));
    }
    hosts.push_back(h);
  }
  if (hosts.empty()) {
    throw UsageError("launch: the hostfile " + path +
                     " names no host; write NAME slots=RANKS lines");
  }
  return hosts;
}

namespace {

/// mpirun's placement for a multi-host launch. Threads per rank are each node's own affair
/// (Runtime: its cores / its ranks) unless --threads fixes them for every node.
void addHosts(const LaunchOptions& o, const std::vector<HostSlots>& hosts,
              std::vector<std::string>& cmd) {
  if (!o.hostfile.empty()) {
    cmd.insert(cmd.end(), {"--hostfile", o.hostfile});
  } else {
    std::string list;
    for (const HostSlots& h : hosts)
      list += (list.empty() ? "" : ",") + h.name + ":" + std::to_string(h.slots);
    cmd.insert(cmd.end(), {"--host", list});
  }
  const bool even = std::all_of(hosts.begin(), hosts.end(),
                                [&](const HostSlots& h) { return h.slots == hosts[0].slots; });
  // Ranks fill node by node: local ranks 0..K-1 on each, rank r on node r / K.
  std::string map = even ? "ppr:" + std::to_string(hosts[0].slots) + ":node" : "slot";
  if (o.threads > 0) {
    cmd.insert(cmd.end(),
               {"--map-by", map + ":PE=" + std::to_string(o.threads), "--bind-to", "core"});
    const std::string t = std::to_string(o.threads);
    cmd.insert(cmd.end(), {"-x", "OMP_NUM_THREADS=" + t, "-x", "OPENBLAS_NUM_THREADS=" + t});
  } else {
    cmd.insert(cmd.end(), {"--map-by", map, "--bind-to", "none"});
  }
}

}  // namespace

std::vector<std::string> launchCommand(const LaunchOptions& options, const std::string& self) {
  if (options.ranks < 0) throw UsageError("launch: -n must be at least 1");
  if (options.command.empty()) {
    throw UsageError("launch: say what each rank runs, e.g. `gentrain launch -n 2 train SPEC`");
  }
  if (!options.hosts.empty() && !options.hostfile.empty()) {
    throw UsageError("launch: give --hosts or --hostfile, not both");
  }
  std::vector<HostSlots> hosts;
  if (!options.hosts.empty()) hosts = parseHostList(options.hosts);
  if (!options.hostfile.empty()) hosts = parseHostfile(options.hostfile);
  int slots = 0;
  for (const HostSlots& h : hosts) slots += h.slots;
  const int ranks = options.ranks > 0 ? options.ranks : hosts.empty() ? 2 : slots;
  if (!hosts.empty() && ranks != slots) {
    throw UsageError(log::cat("launch: -n ", ranks, " but the hosts have ", slots,
                              " slots; drop -n (one rank a slot) or make the slots add up"));
  }
  std::vector<std::string> cmd{"mpirun"};
  if (::geteuid() == 0) cmd.push_back("--allow-run-as-root");
  cmd.insert(cmd.end(), {"-np", std::to_string(ranks)});
  if (!hosts.empty()) {
    addHosts(options, hosts, cmd);
  } else {
    const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    const int threads = options.threads > 0 ? options.threads : std::max(1, cores / ranks);
    if (ranks * threads <= cores) {
      // Each rank on cores of its own: its compute threads stay where their caches are.
      cmd.insert(cmd.end(),
                 {"--map-by", "slot:PE=" + std::to_string(threads), "--bind-to", "core"});
    } else {
      cmd.insert(cmd.end(), {"--oversubscribe", "--bind-to", "none"});
    }
    const std::string t = std::to_string(threads);
    cmd.insert(cmd.end(), {"-x", "OMP_NUM_THREADS=" + t, "-x", "OPENBLAS_NUM_THREADS=" + t});
  }
  cmd.insert(cmd.end(), options.mpirunArgs.begin(), options.mpirunArgs.end());
  cmd.push_back(self);
  cmd.insert(cmd.end(), options.command.begin(), options.command.end());
  return cmd;
}

int launch(const LaunchOptions& options) {
  const std::vector<std::string> cmd = launchCommand(options, selfPath());
  std::fprintf(stderr, "gentrain launch: %s\n", joinQuoted(cmd).c_str());
  if (options.dryRun) return 0;
  return superviseMpirun(cmd);  // Note [an abort that cannot finish]
}

namespace {

/// Refuses options Slurm would not take, before anything is written.
void checkSubmitOptions(const SubmitOptions& o) {
  if (o.nodes < 1 || o.tasksPerNode < 1) {
    throw UsageError("submit: --nodes and --ntasks-per-node must be at least 1");
  }
  if (o.minNodes < 0 || o.minNodes > o.nodes) {
    throw UsageError(log::cat("submit: --min-nodes ", o.minNodes,
                              " must be between 1 and --nodes (", o.nodes, ")"));
  }
  if (o.gpusPerNode < 0 || o.cpusPerTask < 0) {
    throw UsageError("submit: --gpus-per-node and --cpus-per-task cannot be negative");
  }
  if (o.launcher != "srun" && o.launcher != "mpirun") {
    throw UsageError("submit: --launcher is '" + o.launcher + "'; use srun or mpirun");
  }
  if (o.signalSeconds < 1 || o.signalSeconds > 65535) {
    throw UsageError("submit: --signal-seconds must be between 1 and 65535 (Slurm's limit)");
  }
  const char* word = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.,-";
  requireWord("--partition", o.partition, word, "gpu or gpu,debug");
  requireWord("--account", o.account, word, "proj123");
  requireWord("--qos", o.qos, word, "normal");
  requireWord("--mpi", o.mpi, word, "pmix or pmi2");
  requireWord("--time", o.time, "0123456789:-", "HH:MM:SS or D-HH:MM:SS");
  for (const std::string& arg : o.sbatchArgs) {
    if (arg.rfind("--", 0) != 0 || arg.find('\n') != std::string::npos) {
      throw UsageError("submit: --sbatch '" + arg + "' must be one sbatch option like --mem=32G");
    }
  }
}

/// The comment block and #SBATCH directives of the batch script.
std::string scriptHeader(const SubmitOptions& o, const Spec& spec, const SubmitPlan& plan) {
  std::ostringstream s;
  const bool array = plan.tasks > 0;
  s << "#!/bin/bash\n"
    << "# gentrain job: " << spec.text("name") << " (" << spec.text("model.name")
    << "), written by "
    << "`gentrain submit` on " << nowText() << ".\n"
    << "# It trains " << plan.specFile << ", the spec as resolved at submission"
    << (array ? "; array task i trains\n# combination i of its sweep in " + plan.runDir + "/task-i"
              : "")
    << ".\n# Every start resumes from the newest complete checkpoint, so a requeued job goes on "
       "where it\n# stopped. On SIGUSR1 (sent "
    << o.signalSeconds
    << " s before the time limit) the ranks checkpoint, rank 0\n# requeues the job and it "
       "exits; on SIGTERM (scancel, preemption) they checkpoint and exit,\n# and only Slurm "
       "requeues (a preempted job). Submit it again by hand: sbatch "
    << plan.scriptFile << "\n";
  // An #SBATCH line is a comment: a line break in a value would end it and make the rest a
  // command of the job. Names are checked at load (Note [run names]); paths are checked here.
  const auto directive = [&s](const std::string& text) {
    if (text.find_first_of("\n\r") != std::string::npos) {
      throw UsageError("submit: '" + text.substr(0, text.find_first_of("\n\r")) +
                       "...' has a line break, which a batch script cannot hold; choose a "
                       "run.dir and working folder without one");
    }
    s << "#SBATCH " << text << "\n";
  };
  directive("--job-name=" + quote(spec.text("name")));
  // --min-nodes: a range; Slurm gives as many as it can, and a requeued job starts on fewer.
  directive("--nodes=" + (o.minNodes > 0 && o.minNodes < o.nodes
                              ? std::to_string(o.minNodes) + "-" + std::to_string(o.nodes)
                              : std::to_string(o.nodes)));
  directive("--ntasks-per-node=" + std::to_string(o.tasksPerNode));
  if (o.cpusPerTask > 0) directive("--cpus-per-task=" + std::to_string(o.cpusPerTask));
  if (o.gpusPerNode > 0) directive("--gpus-per-node=" + std::to_string(o.gpusPerNode));
  if (!o.partition.empty()) directive("--partition=" + o.partition);
  if (!o.account.empty()) directive("--account=" + o.account);
  if (!o.qos.empty()) directive("--qos=" + o.qos);
  if (!o.time.empty()) directive("--time=" + o.time);
  // srun: Slurm signals the ranks itself. mpirun: only the batch shell, which passes it on.
  directive(std::string("--signal=") + (o.launcher == "srun" ? "" : "B:") + "USR1@" +
            std::to_string(o.signalSeconds));
  directive("--requeue");
  // Note [shrink and go on] in the script: a failed node does not end the job.
  if (o.minNodes > 0 && o.minNodes < o.nodes) directive("--no-kill");
  directive("--open-mode=append");
  directive("--chdir=" + quote(fs::current_path().string()));
  directive("--output=" +
            quote((fs::path(plan.runDir) / (array ? "slurm-%A_%a.out" : "slurm-%j.out")).string()));
  if (array) directive("--array=0-" + std::to_string(plan.tasks - 1));
  for (const std::string& arg : o.sbatchArgs) directive(arg);

  return s.str();
}

/// The script's body: start the ranks with the launcher, pass stop signals on, wait for them.
std::string scriptBody(const SubmitOptions& o, const SubmitPlan& plan, const std::string& self) {
  const bool array = plan.tasks > 0;
  const bool shrink = o.minNodes > 0 && o.minNodes < o.nodes;
  std::ostringstream s;
  std::vector<std::string> args{"train", plan.specFile, "--resume"};
  s << "\nset -u\n"
    << "echo \"gentrain job ${SLURM_JOB_ID} (restart ${SLURM_RESTART_COUNT:-0}) on $(hostname) at "
       "$(date -Is)\"\n";
  if (o.cpusPerTask > 0) {
    s << "export OMP_NUM_THREADS=\"$SLURM_CPUS_PER_TASK\" "
         "OPENBLAS_NUM_THREADS=\"$SLURM_CPUS_PER_TASK\"\n";
  }
  s << "args=(" << joinQuoted(args) << (array ? " --sweep-task \"$SLURM_ARRAY_TASK_ID\"" : "")
    << ")\n";
  s << "rundir=" << quote(plan.runDir) << (array ? "/task-\"$SLURM_ARRAY_TASK_ID\"" : "") << "\n"
    << "nodes=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | paste -sd, -)\n";
  s << "pid=\npass_on() {\n"
       "  echo \"gentrain job: $1 at $(date -Is); passing it on to the ranks\"\n"
       "  [ -z \"$pid\" ] || kill -s \"$1\" \"$pid\" 2>/dev/null\n}\n"
       "trap 'pass_on USR1' USR1\ntrap 'pass_on TERM' TERM\n";
  // The ranks on $nodes, tasks-per-node each; `pid` is the launcher's.
  s << "start_ranks() {\n"
    << "  local count ntasks\n"
    << "  count=$(tr , '\\n' <<<\"$nodes\" | grep -c .)\n"
    << "  ntasks=$((count * " << o.tasksPerNode << "))\n"
    << "  rm -f \"$rundir/aborted\"  # a rank that ends the job writes its verdict there\n";
  if (o.launcher == "srun") {
    s << "  srun --mpi=" << o.mpi << " --kill-on-bad-exit=1 ${overlap:-}--nodes=\"$count\" "
      << "--ntasks=\"$ntasks\" --nodelist=\"$nodes\" " << quote(self) << " \"${args[@]}\" &\n";
  } else {
    s << "  local root=()\n  [ \"$(id -u)\" -ne 0 ] || root=(--allow-run-as-root)\n"
      << "  mpirun \"${root[@]}\" -np \"$ntasks\" --host \"$(sed 's/,/:" << o.tasksPerNode
      << ",/g; s/$/:" << o.tasksPerNode << "/' <<<\"$nodes\")\" --bind-to none " << quote(self)
      << " \"${args[@]}\" &\n";
  }
  s << "  pid=$!\n}\n";
  s << "# A trap cuts wait short (status > 128 with the launcher still there): wait again.\n"
       "wait_ranks() {\n"
       "  status=\n"
       "  while [ -z \"$status\" ]; do\n"
       "    wait \"$pid\"\n    code=$?\n"
       "    if [ \"$code\" -gt 128 ] && kill -0 \"$pid\" 2>/dev/null; then continue; fi\n"
       "    status=$code\n"
       "  done\n"
       "  echo \"gentrain job: ranks exited with status $status at $(date -Is)\"\n"
       "}\n"
       "# Note [shrink and go on]: the hosts whose ranks were lost, from the verdict of the rank\n"
       "# that ended the job (it names them: \"lost ranks 2,3 (host node2)\").\n"
       "lost_hosts() {\n"
       "  [ \"$status\" -ne 0 ] && [ -f \"$rundir/aborted\" ] || return 0\n"
       "  grep -oE 'lost ranks? [0-9,]+ \\(host [^)]+\\)' \"$rundir/aborted\" |\n"
       "    grep -oE 'host [^)]+' | cut -d' ' -f2 | sort -u\n"
       "}\n"
       "start_ranks\nwait_ranks\n";
  if (shrink) {
    // --no-kill: Slurm keeps the job when a node of it fails and drops that node from the
    // allocation; the script starts the ranks again on the nodes left, which resume from the
    // newest checkpoint with the same global batch.
    s << "while lost=$(lost_hosts) && [ -n \"$lost\" ]; do\n"
      << "  nodes=$(tr , '\\n' <<<\"$nodes\" | grep -vxF -f <(echo \"$lost\") | paste -sd, -)\n"
      << "  left=$(tr , '\\n' <<<\"$nodes\" | grep -c .)\n"
      << "  if [ \"$left\" -lt " << o.minNodes << " ]; then\n"
      << "    echo \"gentrain job: lost host(s) $(paste -sd, <<<\"$lost\"); $left node(s) left, "
         "fewer than --min-nodes "
      << o.minNodes << "\"\n"
      << "    break\n  fi\n"
      << "  echo \"gentrain job: lost host(s) $(paste -sd, <<<\"$lost\"); going on with $left "
         "node(s): $nodes\"\n"
      << "  # The lost step may hold its CPUs until Slurm has given up on the lost node.\n"
      << "  overlap='--overlap '\n"
      << "  start_ranks\n  wait_ranks\n"
      << "done\n";
  }
  s << "exit \"$status\"\n";
  return s.str();
}

}  // namespace

SubmitPlan planSubmission(const SubmitOptions& o, const Spec::SchemaFor& schemaFor,
                          const std::string& self) {
  checkSubmitOptions(o);
  // Every combination must be a valid spec before anything reaches the queue.
  const Spec spec = Spec::load(o.spec, o.overrides, schemaFor);
  SubmitPlan plan;
  plan.tasks = spec.sweepSize();
  if (plan.tasks > 1000) {
    throw UsageError(log::cat("submit: ", o.spec, " sweeps ", plan.tasks,
                              " combinations; Slurm "
                              "arrays are commonly capped at 1000 tasks: split the sweep"));
  }
  for (int64_t task = 0; task < plan.tasks; ++task) spec.sweepTask(task);

  plan.resolved = spec.resolvedYaml();
  const RunDirectory runDir = RunDirectory::of(spec);
  plan.runDir = runDir.path();
  plan.specFile = runDir.submittedSpec();
  plan.scriptFile = runDir.jobScript();
  runDir.refuseUnlessResuming(o.resume, "submit: ");
  plan.script = scriptHeader(o, spec, plan) + scriptBody(o, plan, self);
  return plan;
}

namespace {
/// Whether `program` is an executable file in a folder of PATH.
bool onPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::stringstream folders(path ? path : "");
  for (std::string folder; std::getline(folders, folder, ':');) {
    if (!folder.empty() && ::access((fs::path(folder) / program).c_str(), X_OK) == 0) return true;
  }
  return false;
}
}  // namespace

std::string submit(const SubmitOptions& options, const Spec::SchemaFor& schemaFor) {
  const SubmitPlan plan = planSubmission(options, schemaFor, selfPath());
  if (!options.dryRun && !onPath("sbatch")) {
    throw UsageError(
        "submit: sbatch is not on PATH (not a Slurm login node?); --dry-run writes "
        "the script without submitting it");
  }
  std::error_code error;
  // The outermost folder this call creates: removed again if sbatch refuses.
  fs::path created;
  for (fs::path p = fs::path(plan.runDir); !p.empty() && !fs::exists(p); p = p.parent_path()) {
    created = p;
  }
  fs::create_directories(plan.runDir, error);
  if (error) throw UsageError("submit: cannot create " + plan.runDir + ": " + error.message());
  for (const auto& [path, text] :
       {std::pair<std::string, std::string>{plan.specFile, plan.resolved},
        {plan.scriptFile, plan.script}}) {
    std::ofstream(path + ".tmp") << text;
    fs::rename(path + ".tmp", path, error);
    if (error) throw UsageError("submit: cannot write " + path + ": " + error.message());
  }
  fs::permissions(plan.scriptFile, fs::perms::owner_exec, fs::perm_options::add, error);
  const std::string where =
      plan.tasks > 0
          ? log::cat(plan.tasks, " array tasks, run directories ", plan.runDir, "/task-0 ... task-",
                     plan.tasks - 1, "; summary: gentrain runs ", plan.runDir)
          : "run directory " + plan.runDir;
  if (options.dryRun) {
    return "wrote " + plan.scriptFile + " (not submitted: --dry-run); " + where +
           "; submit it with: sbatch " + plan.scriptFile;
  }
  FILE* pipe = ::popen(("sbatch --parsable " + quote(plan.scriptFile) + " 2>&1").c_str(), "r");
  if (pipe == nullptr)
    throw UsageError("submit: cannot run sbatch: " + std::string(strerror(errno)));
  std::string output;
  char buffer[512];
  while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
  const int status = ::pclose(pipe);
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  if (status != 0) {
    // Nothing was queued: take back what this call wrote, so that the same command can be
    // tried again (a --dry-run keeps the script to look at).
    fs::remove(plan.specFile, error);
    fs::remove(plan.scriptFile, error);
    if (!created.empty()) files::removeTree(created.string());
    std::replace(output.begin(), output.end(), '\n', ' ');
    throw UsageError(
        "submit: sbatch refused the job: " + (output.empty() ? "(no output)" : output) +
        "; nothing was submitted (--dry-run writes the script to inspect)");
  }
  const std::string job = output.substr(0, output.find(';'));  // "id" or "id;cluster"
  return "submitted job " + job + "; " + where + "; follow it in " +
         (fs::path(plan.runDir) /
          (plan.tasks > 0 ? "slurm-" + job + "_*.out" : "slurm-" + job + ".out"))
             .string();
}

}  // namespace gentrain
