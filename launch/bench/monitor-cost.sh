#!/bin/bash
# What stall detection costs (issue 20): the default VAE (global batch 128, 1 thread per rank) on
# 2 ranks, in interleaved rounds, with the stall monitor on (phase publishing, heartbeats to
# rank 0: the default), off (runtime.stall_monitor=false), and on with every timed step traced
# (run.trace_steps). Prints best and median images/s of each and the cost ratios, and the cost
# measured inside each monitored run (Note [what publishing costs] in launch/Bench.cpp: the
# publishing calls and the monitor thread's CPU time as a share of the slowest rank's time),
# which does not drown in run-to-run noise. Needs a build (launch/setup.sh). STEPS=N per run,
# ROUNDS=R.
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${STEPS:-400}
rounds=${ROUNDS:-5}
flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
trap 'rm -f trace.json' EXIT  # a benchmark's trace goes to the current folder
run() {  # overrides...: images/s of one 2-rank run
  mpirun "${flags[@]}" -np 2 build/gentrain bench train configs/vae-fashion-mnist.yaml \
    runtime.threads=1 "$@" --steps "$steps" --warmup 30 2>&1 |
    grep -oE "RESULT images_per_s=[0-9.]+.*publishing_share=[0-9.]+" |
    sed -E 's/RESULT images_per_s=([0-9.]+).*publishing_share=([0-9.]+)/\1 \2/'
}
on=(); off=(); traced=(); shares=()
for round in $(seq 1 "$rounds"); do
  read -r speed share < <(run)
  on+=("$speed"); shares+=("$share")
  read -r speed share < <(run runtime.stall_monitor=false)
  off+=("$speed")
  read -r speed share < <(run "run.trace_steps=[0,$((steps + 40))]")
  traced+=("$speed")
done
python3 - "${on[*]}" "${off[*]}" "${traced[*]}" "${shares[*]}" <<'PY'
import statistics, sys
on, off, traced, shares = ([float(v) for v in a.split()] for a in sys.argv[1:5])
def line(name, xs):
    return f"{name}: best {max(xs):.0f}, median {statistics.median(xs):.0f} images/s"
print(line("monitor off", off)); print(line("monitor on (default)", on)); print(line("on, tracing every step", traced))
def cost(xs):
    per = sorted(o / x - 1 for x, o in zip(xs, off))  # extra step time, round by round
    return f"{100 * (max(off) / max(xs) - 1):+.1f}% (best vs best), {100 * statistics.median(per):+.1f}% (median of rounds)"
print(f"RESULT monitor_cost: {cost(on)} of the step")
print(f"RESULT tracing_cost: {cost(traced)} of the step")
print(f"RESULT monitor_cost_in_run: {100 * statistics.median(shares):.2f}% of the slowest rank's time "
      f"(median of {len(shares)} runs, largest {100 * max(shares):.2f}%): publishing calls + monitor thread CPU")
PY
