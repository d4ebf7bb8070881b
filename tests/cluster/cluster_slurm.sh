# A Slurm cluster on the emulated nodes of tests/cluster/cluster.sh: one slurmctld (on node1),
# one slurmd per node (NodeName = its hostname, NodeAddr = its address), one munged (the
# machine's, with a key, socket and logs of its own). Everything lives under $cluster_dir/slurm;
# the daemons listen only on the nodes' addresses (each node's namespace has its own ports).
# Needs root, Debian's slurmctld, slurmd, slurm-client and munge, and tests/launch/slurm_cluster.sh
# sourced first (slurm_conf_plugins). After cluster_up:
#   cluster_slurm_start 4      # CPUs a node claims; exports SLURM_CONF
#   on_node1 sbatch ...; on_node1 squeue
#   cluster_slurm_stop

# cluster_slurm_start CPUS: starts the daemons; waits until every node is idle.
cluster_slurm_start() {
  local cpus=$1 dir=$cluster_dir/slurm node k nodes=""
  mkdir -p "$dir/state"
  for node in "${cluster_nodes[@]}"; do mkdir -p "$dir/spool-$node" "$dir/tmp-$node"; done
  mungekey -c -f -k "$dir/munge.key" && chmod 600 "$dir/munge.key"
  munged --force --key-file="$dir/munge.key" --socket="$dir/munge.sock" \
    --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge.seed" || return 1
  # SlurmdTimeout: a node that stops answering is DOWN after 10 s (the default is 300 s).
  # TmpFS: a /tmp per node for what the daemons keep there (srun --mpi=pmix's per-step folder
  # would otherwise be made by both nodes in the one /tmp they share here).
  # cred_expire: how long a requeued job waits before it may start again (120 s by default).
  {
    cat <<CONF
ClusterName=gentrainmany
SlurmctldHost=node1($cluster_subnet.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
AuthInfo=socket=$dir/munge.sock,cred_expire=10
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool-%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
$(slurm_conf_plugins)
SlurmdTimeout=10
JobRequeue=1
KillWait=5
MinJobAge=600
TmpFS=$dir/tmp-%n
CONF
    k=0
    for node in "${cluster_nodes[@]}"; do
      k=$((k + 1))
      echo "NodeName=$node NodeAddr=$cluster_subnet.$k CPUs=$cpus State=UNKNOWN"
      nodes+="${nodes:+,}$node"
    done
    echo "PartitionName=debug Nodes=$nodes Default=YES MaxTime=INFINITE State=UP"
  } > "$dir/slurm.conf"
  export SLURM_CONF=$dir/slurm.conf
  cluster_exec node1 slurmctld -f "$SLURM_CONF" || return 1
  for node in "${cluster_nodes[@]}"; do
    cluster_exec "$node" slurmd -f "$SLURM_CONF" -N "$node" || return 1
  done
  local i
  for i in $(seq 1 60); do
    [ "$(on_node1 sinfo -h -N -o %t 2>/dev/null | grep -cx idle)" -eq "${#cluster_nodes[@]}" ] && return 0
    sleep 0.5
  done
  echo "cluster_slurm_start: the nodes did not become idle; see $dir/*.log"
  return 1
}

# on_node1 CMD...: a Slurm client command (or gentrain submit) run on node1.
on_node1() { cluster_exec node1 "$@"; }

# cluster_slurm_stop: cancels the jobs and stops the daemons.
cluster_slurm_stop() {
  local dir=$cluster_dir/slurm f
  [ -f "$dir/slurm.conf" ] || return 0
  on_node1 scancel --full --quiet -u "$(id -un)" 2>/dev/null
  for f in "$dir"/slurmd-*.pid "$dir/slurmctld.pid" "$dir/munged.pid"; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
  done
  sleep 1
  for f in "$dir"/slurmd-*.pid "$dir/slurmctld.pid" "$dir/munged.pid"; do
    [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
  done
  true
}
