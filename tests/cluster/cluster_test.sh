#!/bin/bash
# Many hosts, emulated (issue 19): two nodes made of network + UTS namespaces on a private bridge
# (tests/cluster/cluster.sh), each with a disk of its own, and gentrain across them:
#  - `gentrain launch --hosts node1:2,node2:2` trains the same weights as one process on the
#    whole batch (within 1e-5); every rank is reported with its host, local rank and threads;
#  - a node whose copy of the data differs is refused at start, both hosts named;
#  - node loss (every process of node2 killed): the survivors end within 30 s, the lost host and
#    its ranks named; --resume goes on from the newest checkpoint and ends as the reference;
#  - a network partition (node2's link down): the job ends within 60 s naming the unreachable
#    host, and no rank is left running on either side;
#  - a Slurm across both nodes (tests/cluster/cluster_slurm.sh): `gentrain submit --nodes 2
#    --ntasks-per-node 2` with srun and with mpirun inside the allocation trains as one process
#    does; node2 lost mid-job (--min-nodes 1): it goes on on node1 alone with 2 ranks and ends
#    as one process does.
# Skips (exit 77) when namespaces cannot be made here (not root, no iproute2).
# Usage: cluster_test.sh GENTRAIN
gentrain=$1
here=$(cd "$(dirname "$0")" && pwd)
TEST_NAME=cluster source "$here/../launch/test_lib.sh"
source "$here/cluster.sh"
why=$(cluster_missing)
if [ -n "$why" ]; then
  echo "SKIPPED: no emulated cluster: $why"
  exit 77
fi
trap 'cluster_down; cd /; rm -rf "$work"' EXIT
cluster_up 2 "$work/cluster" || { echo "FAIL: cannot make the emulated cluster"; exit 1; }
pass "cluster up: $(cluster_exec node1 hostname) and $(cluster_exec node2 hostname) on a private bridge"
# mpirun (started on node1 by `gentrain launch`) reaches node2 through the cluster's agent.
export OMPI_MCA_plm_rsh_agent=$cluster_dir/rsh-agent OMPI_MCA_plm_rsh_no_tree_spawn=1

# The data: one import, a copy on each node's own disk.
make_idx 4 64 16 "0 255"
"$gentrain" data import-idx --dir . --out data.h5 >/dev/null 2>&1 || { echo "FAIL import"; exit 1; }
cp data.h5 "$cluster_dir/disk/node1/"
cp data.h5 "$cluster_dir/disk/node2/"
local_data=$cluster_dir/disk/local/data.h5
tiny_vae_spec many \
  'train: {global_batch: 8, epochs: 3}' \
  'log: {every_steps: 8}' \
  'eval: {batch: 4}' \
  'sample: {count: 4, every_epochs: 0}' \
  'checkpoint: {every_epochs: 1}' > spec.yaml

# on_nodes ARGS...: gentrain launch --hosts node1:2,node2:2 ARGS..., started on node1.
on_nodes() { cluster_exec node1 "$gentrain" launch --hosts node1:2,node2:2 "$@"; }
# weights RUN FILE: exports RUN's weights (on node1, where data.path is that node's copy).
weights() { cluster_exec node1 "$gentrain" export "$1" -o "$2" --force >/dev/null 2>&1; }

# 1. Two nodes x two ranks = one process on the whole batch.
cluster_exec node1 "$gentrain" train spec.yaml name=reference data.path="$local_data" > reference.log 2>&1 &&
  weights runs/reference reference.h5 || { echo "FAIL reference run"; tail reference.log; exit 1; }
on_nodes train spec.yaml name=two-nodes data.path="$local_data" runtime.threads=0 > two.log 2>&1
rc=$?
placement=$(grep -oE "rank [0-9]: host node[0-9], local rank [0-9] of 2, [0-9]+ thread\(s\) \(.*\), device cpu" two.log)
if [ "$rc" -eq 0 ] && [ "$(grep -c . <<<"$placement")" -eq 4 ] &&
   grep -q "rank 0: host node1, local rank 0 of 2" <<<"$placement" &&
   grep -q "rank 1: host node1, local rank 1 of 2" <<<"$placement" &&
   grep -q "rank 2: host node2, local rank 0 of 2" <<<"$placement" &&
   grep -q "rank 3: host node2, local rank 1 of 2" <<<"$placement" &&
   grep -q "cores / 2 rank(s) on the node" <<<"$placement"; then
  pass "2 nodes x 2 ranks placed: $(tr '\n' ';' <<<"$placement")"
else
  fail "2 nodes x 2 ranks: exit $rc, placement '$placement'"; tail -20 two.log
fi
weights runs/two-nodes two.h5
check same-weights-as-one-process 0 "largest difference .*within the tolerance 1e-05" -- \
  "$gentrain" compare-weights reference.h5 two.h5 --tolerance 1e-5
echo "   $("$gentrain" compare-weights reference.h5 two.h5)"

# 2. A node whose copy differs (another import: same size and shape, other pixels).
mkdir other && (cd other && make_idx 5 64 16 "0 255" &&
  "$gentrain" data import-idx --dir . --out data.h5 >/dev/null 2>&1)
cp other/data.h5 "$cluster_dir/disk/node2/data.h5"
check data-differs 1 "ranks disagree on the data at data.path: rank 2 \(host node2\) has 'train: 64 images 1x4x4, labels, chunks of [0-9]+, checksum [0-9a-f]+' where rank 0 \(host node1\) has 'train: 64 images 1x4x4, labels, chunks of [0-9]+, checksum [0-9a-f]+'.*give every node the same copy of $local_data" -- \
  on_nodes train spec.yaml name=differs data.path="$local_data"
cp data.h5 "$cluster_dir/disk/node2/data.h5"

# gentrain_on NODE: the gentrain processes still running on NODE.
gentrain_on() {
  local pids
  pids=$(ip netns pids "$cluster_id-$1" 2>/dev/null | tr '\n' ',' | sed 's/,$//')
  [ -z "$pids" ] || ps -o pid=,comm= -p "$pids" 2>/dev/null | grep -w gentrain
}
# fail_node_mid_run NAME ACTION LIMIT PATTERN: starts a long 2x2 run, does ACTION (a function)
# once its first checkpoint is complete, and checks that the job ends within LIMIT s, non-zero,
# with PATTERN in its output, and that no gentrain process is left on either node.
fail_node_mid_run() {
  local name=$1 action=$2 limit=$3 pattern=$4 i start rc
  # 40 epochs, rank 0 slowed 20 ms a step: the run lasts well past the failure.
  GENTRAIN_FAULT=slow@0:20 on_nodes train spec.yaml name="$name" data.path="$local_data" \
    train.epochs=40 > "$name.log" 2>&1 &
  local job=$!
  for i in $(seq 1 600); do
    ls runs/"$name"/checkpoints/step-*/DONE >/dev/null 2>&1 && break
    sleep 0.1
  done
  sleep 0.5
  start=$(date +%s.%N)
  $action
  for i in $(seq 1 $((limit * 10 + 100))); do
    kill -0 "$job" 2>/dev/null || break
    sleep 0.1
  done
  local took
  took=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
  if kill -0 "$job" 2>/dev/null; then
    fail "$name: still running $took s after the failure"; kill -9 "$job"; tail -20 "$name.log"; return
  fi
  wait "$job"
  rc=$?
  local said
  said=$(grep -oE -- "$pattern" "$name.log" | head -1)
  if [ "$rc" -ne 0 ] && python3 -c "import sys; sys.exit(not $took <= $limit)" && [ -n "$said" ]; then
    pass "$name: exit $rc after $took s, says '$said'"
  else
    fail "$name: exit $rc after $took s (want non-zero within $limit s, matching '$pattern')"
    tail -25 "$name.log"
  fi
  for i in $(seq 1 150); do
    [ -z "$(gentrain_on node1)$(gentrain_on node2)" ] && break
    sleep 0.1
  done
  if [ -z "$(gentrain_on node1)$(gentrain_on node2)" ]; then
    pass "$name: no rank left running"
  else
    fail "$name: ranks left running: $(gentrain_on node1) $(gentrain_on node2)"
  fi
}
# resume_ends_as_reference NAME: --resume on both nodes finishes the run as one process did.
resume_ends_as_reference() {
  local from
  on_nodes train spec.yaml name="$1" data.path="$local_data" train.epochs=40 --resume \
    > "$1-resume.log" 2>&1
  from=$(grep -oE "resume: continuing from .* at step [0-9]+" "$1-resume.log" | head -1)
  weights runs/"$1" "$1.h5"
  if [ -n "$from" ] &&
     "$gentrain" compare-weights long.h5 "$1.h5" --tolerance 1e-5 > "$1-compare.txt"; then
    pass "$1: $from on 2 nodes, ends as one process did ($(cat "$1-compare.txt"))"
  else
    fail "$1: resume '$from': $(cat "$1-compare.txt" 2>/dev/null)"; tail -15 "$1-resume.log"
  fi
}
cluster_exec node1 "$gentrain" train spec.yaml name=long data.path="$local_data" train.epochs=40 > long.log 2>&1 &&
  weights runs/long long.h5 || { echo "FAIL the long reference run"; tail long.log; exit 1; }

# 3. Node loss: every process of node2 (its two ranks and mpirun's daemon) killed at once.
kill_node2() { cluster_kill_node node2; }
fail_node_mid_run node-lost kill_node2 30 "lost ranks 2,3 \(host node2\): [^;]*"
resume_ends_as_reference node-lost

# 4. A network partition: node2's link goes down, its processes live on.
cut_node2() { cluster_cut node2; }
fail_node_mid_run partitioned cut_node2 60 "rank [23] \(host node2\) silent for [0-9.]+ s[^;]*"
ip -n "$cluster_id-sw" link set p2 up

# 5. Slurm across both nodes: a slurmd on each, jobs of 2 nodes x 2 ranks with each launcher,
# and a job that loses node2, requeues and goes on with the node left.
source "$here/../launch/slurm_cluster.sh"  # slurm_missing
source "$here/cluster_slurm.sh"
why=$(slurm_missing)
if [ -n "$why" ]; then
  echo "skip Slurm on many nodes: $why"
else
  trap 'cluster_slurm_stop; cluster_down; cd /; rm -rf "$work"' EXIT
  if cluster_slurm_start 4; then
    pass "Slurm on 2 nodes: $(on_node1 sinfo -h -N -o '%N %t' | tr '\n' ' ')"
  else
    fail "Slurm on 2 nodes did not start"; tail -5 "$cluster_dir"/slurm/*.log
  fi
  # job_ends JOB SECONDS: waits until JOB is COMPLETED, FAILED, ...; prints the state.
  job_ends() {
    local i state
    for i in $(seq 1 $(($2 * 2))); do
      state=$(on_node1 scontrol show job "$1" -o 2>/dev/null | grep -oE "JobState=[A-Z_]+" | cut -d= -f2)
      case "$state" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) echo "$state"; return 0 ;; esac
      sleep 0.5
    done
    echo "still ${state:-unknown} after $2 s"
  }
  # mpirun inside the allocation starts its daemon on node2 through srun, so the ranks there see
  # a Slurm step the ranks on node1 do not: the start-up checks must still agree (they once hung).
  for launcher in srun mpirun; do
    name=slurm-$launcher
    out=$(on_node1 "$gentrain" submit spec.yaml name="$name" data.path="$local_data" \
      runtime.threads=0 --nodes 2 --ntasks-per-node 2 --launcher "$launcher" 2>&1)
    job=$(grep -oE "submitted job [0-9]+" <<<"$out" | grep -oE "[0-9]+$")
    state=$([ -n "$job" ] && job_ends "$job" 180)
    placed=$(cat runs/"$name"/slurm-*.out 2>/dev/null | grep -cE "rank [0-3]: host node(1, local rank [01]|2, local rank [01]) of 2")
    weights runs/"$name" "$name.h5"
    if [ "$state" = COMPLETED ] && [ "$placed" -eq 4 ] &&
       "$gentrain" compare-weights reference.h5 "$name.h5" --tolerance 1e-5 > "$name-compare.txt"; then
      pass "Slurm, $launcher launcher: job $job on node1 and node2, local ranks 0,1 on each; $(cat "$name-compare.txt")"
    else
      fail "Slurm, $launcher launcher: job '$job' $state, $placed placement lines: $out"
      [ -z "$job" ] || on_node1 scancel "$job"
      tail -20 runs/"$name"/slurm-*.out; cat "$name-compare.txt" 2>/dev/null
    fi
  done

  # Shrink and go on: node2 lost mid-run (its slurmd and every process on it); the job (--no-kill)
  # starts its ranks again on node1 alone, 2 instead of 4, the same global batch, and ends where
  # one uninterrupted process does.
  out=$(GENTRAIN_FAULT=slow@0:20 on_node1 "$gentrain" submit spec.yaml name=shrink \
    data.path="$local_data" train.epochs=40 --nodes 2 --min-nodes 1 --ntasks-per-node 2 2>&1)
  job=$(grep -oE "submitted job [0-9]+" <<<"$out" | grep -oE "[0-9]+$")
  for i in $(seq 1 600); do
    ls runs/shrink/checkpoints/step-*/DONE >/dev/null 2>&1 && break
    sleep 0.1
  done
  sleep 0.5
  cluster_kill_node node2
  state=$([ -n "$job" ] && job_ends "$job" 240)
  log=$(cat runs/shrink/slurm-*.out 2>/dev/null)
  weights runs/shrink shrink.h5
  if [ "$state" = COMPLETED ] && grep -q "lost host(s) node2; going on with 1 node(s): node1" <<<"$log" &&
     grep -q "runtime: 2 rank(s), 2 on this node" <<<"$log" &&
     "$gentrain" compare-weights long.h5 shrink.h5 --tolerance 1e-5 > shrink-compare.txt; then
    pass "shrink: node2 lost, job $job went on and finished on node1 with 2 ranks; $(cat shrink-compare.txt)"
  else
    fail "shrink: job '$job' $state"; grep -E "gentrain job|error|lost|runtime:" <<<"$log" | tail -15
    on_node1 scontrol show job "$job" | grep -E "JobState|NumNodes|NodeList" | head -4
    cat shrink-compare.txt 2>/dev/null
  fi
fi

echo "cluster: $passes passed, $failures failed"
[ "$failures" -eq 0 ]
