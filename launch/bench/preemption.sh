#!/bin/bash
# Figure: time from Slurm's time-limit warning (SIGUSR1) to a complete checkpoint and to the job
# leaving the node (requeued), for a spec trained under a private one-node Slurm on this machine
# (tests/launch/slurm_cluster.sh; needs root and Debian's slurmctld slurmd slurm-client munge).
# Usage: bash launch/bench/preemption.sh [SPEC] [RANKS] [overrides...]
#   default: the default VAE (configs/vae-fashion-mnist.yaml, run launch/run-default.sh once
#   first for its data) on 2 ranks, signalled after 300 steps.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
spec=$(readlink -f "${1:-$root/configs/vae-fashion-mnist.yaml}")
ranks=${2:-2}
shift $(( $# < 2 ? $# : 2 ))
source "$root/tests/launch/slurm_cluster.sh"
why=$(slurm_missing)
[ -z "$why" ] || { echo "preemption bench: $why"; exit 2; }
work=$(mktemp -d /tmp/gentrain-preempt-XXXX)
trap 'slurm_stop; rm -rf "$work"' EXIT
slurm_start "$work/cluster" 4 || exit 1
cd "$root"
name=preempt-bench-$$
out=$(build/gentrain submit "$spec" --ntasks-per-node "$ranks" name=$name run.dir="$work/run" \
      checkpoint.every_epochs=0 "$@" 2>&1)
job=$(grep -oE "submitted job [0-9]+" <<<"$out" | grep -oE "[0-9]+$")
[ -n "$job" ] || { echo "$out"; exit 1; }
log="$work/run/logs/rank-0.log"
for i in $(seq 1 1200); do grep -qs "step 300/" "$log" && break; sleep 0.1; done
grep -qs "step 300/" "$log" || { echo "the job did not reach step 300"; tail "$work"/run/slurm-*.out; exit 1; }
start=$(date +%s.%N)
scancel --signal=USR1 "$job"
for i in $(seq 1 1200); do
  scontrol show job "$job" -o | grep -q "JobState=RUNNING" || break
  sleep 0.05
done
left=$(python3 -c "print(f'{$(date +%s.%N) - $start:.2f}')")
scancel "$job"
echo "preemption bench: $(basename "$spec") on $ranks ranks ($*), SIGUSR1 at step 300+"
grep -h "stop: checkpoint complete" "$work"/run/logs/rank-*.log | sed 's/^/  /'
grep -h "stop: requeued" "$work"/run/logs/rank-0.log | sed 's/^/  /'
echo "  job no longer running (requeued) $left s after scancel --signal=USR1 (polled every 0.05 s)"
