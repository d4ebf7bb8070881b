# A private one-node Slurm cluster on localhost: munged, slurmctld and slurmd with their keys,
# sockets, state, spool and logs under one folder and on free ports, so that it touches nothing
# of the machine's own (no /etc/slurm, no system munge). Needs root (slurmd starts jobs as their
# users) and Debian's slurmctld, slurmd, slurm-client and munge.
#
# Sourced by tests/launch/slurm_test.sh; by hand:
#   source tests/launch/slurm_cluster.sh; slurm_start /tmp/mycluster   # exports SLURM_CONF
#   sbatch ...; squeue; ...; slurm_stop

# slurm_missing: prints what is missing to run a cluster here (nothing when all is there).
slurm_missing() {
  local p missing=""
  for p in munged mungekey slurmctld slurmd sbatch srun scontrol squeue scancel; do
    command -v "$p" >/dev/null 2>&1 || missing+=" $p"
  done
  [ -z "$missing" ] || echo "missing:$missing (apt-get install slurmctld slurmd slurm-client munge)"
  [ "$(id -u)" -eq 0 ] || echo "not root (slurmd must run as root)"
  # slurmd initializes its cgroup plugin even with proctrack/linuxproc and task/none (Slurm
  # 22.05); a chroot without /sys/fs/cgroup mounted (../shared/tools/fresh-machine) has none.
  grep -qs " /sys/fs/cgroup" /proc/mounts || echo "no cgroup filesystem at /sys/fs/cgroup (slurmd needs one)"
}

# slurm_conf_plugins: the slurm.conf lines every test cluster shares: no cgroups (processes
# tracked by parent), plain scheduling of CPUs, and nodes that may claim more CPUs than they have.
slurm_conf_plugins() {
  printf '%s\n' ProctrackType=proctrack/linuxproc TaskPlugin=task/none \
    JobAcctGatherType=jobacct_gather/none SchedulerType=sched/backfill \
    SelectType=select/cons_tres SelectTypeParameters=CR_CPU MpiDefault=none ReturnToService=2 \
    SlurmdParameters=config_overrides
}

# slurm_start DIR [CPUS]: starts the daemons with everything in DIR; waits until the node is idle.
slurm_start() {
  slurm_dir=$1
  local cpus=${2:-4} host ports
  host=$(hostname -s)
  mkdir -p "$slurm_dir/state" "$slurm_dir/spool"
  ports=$(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
  mungekey -c -f -k "$slurm_dir/munge.key" && chmod 600 "$slurm_dir/munge.key"
  munged --force --key-file="$slurm_dir/munge.key" --socket="$slurm_dir/munge.sock" \
    --pid-file="$slurm_dir/munged.pid" --log-file="$slurm_dir/munged.log" \
    --seed-file="$slurm_dir/munge.seed" || return 1
  # config_overrides: the node may claim more CPUs than it has, so that jobs of 2 ranks and a
  # sweep's tasks run side by side on a 2-core machine. cred_expire: how long a requeued job
  # waits before it may start again (120 s by default). A job in partition `urgent` preempts
  # jobs in `debug` (the default), which Slurm requeues (PreemptMode=REQUEUE).
  cat > "$slurm_dir/slurm.conf" <<CONF
ClusterName=gentraintest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${ports% *}
SlurmdPort=${ports#* }
AuthType=auth/munge
AuthInfo=socket=$slurm_dir/munge.sock,cred_expire=10
CredType=cred/munge
StateSaveLocation=$slurm_dir/state
SlurmdSpoolDir=$slurm_dir/spool
SlurmctldPidFile=$slurm_dir/slurmctld.pid
SlurmdPidFile=$slurm_dir/slurmd.pid
SlurmctldLogFile=$slurm_dir/slurmctld.log
SlurmdLogFile=$slurm_dir/slurmd.log
$(slurm_conf_plugins)
JobRequeue=1
KillWait=10
MinJobAge=600
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=urgent Nodes=$host MaxTime=INFINITE State=UP PriorityTier=2
CONF
  export SLURM_CONF=$slurm_dir/slurm.conf
  slurmctld -f "$SLURM_CONF" || return 1
  slurmd -f "$SLURM_CONF" || return 1
  local i
  for i in $(seq 1 60); do
    sinfo -h -o %t 2>/dev/null | grep -qx idle && return 0
    sleep 0.5
  done
  echo "slurm_start: the node did not become idle; see $slurm_dir/slurmctld.log"
  return 1
}

# slurm_stop: stops what slurm_start started (jobs first).
slurm_stop() {
  [ -n "${slurm_dir:-}" ] || return 0
  scancel --full --quiet -u "$(id -un)" 2>/dev/null
  local f
  for f in slurmd slurmctld munged; do
    [ -f "$slurm_dir/$f.pid" ] && kill "$(cat "$slurm_dir/$f.pid")" 2>/dev/null
  done
  sleep 1
  for f in slurmd slurmctld munged; do
    [ -f "$slurm_dir/$f.pid" ] && kill -9 "$(cat "$slurm_dir/$f.pid")" 2>/dev/null
  done
  slurm_dir=
}

# slurm_wait JOB SECONDS: waits until JOB (every task of an array) has ended; 1 on timeout.
slurm_wait() {
  local i states
  for i in $(seq 1 $(($2 * 2))); do
    states=$(scontrol show job "$1" -o 2>/dev/null | grep -o "JobState=[A-Z_]*")
    if [ -n "$states" ] && ! grep -qvE "=(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)$" <<<"$states"; then
      return 0
    fi
    sleep 0.5
  done
  return 1
}
