#!/bin/bash
# Faults injected into a 3-rank training run (GENTRAIN_FAULT, see Note [fault injection] in
# framework/base/FaultInjection.h): a rank killed, a rank throwing alone, a rank hanging. Each must
# end the whole job non-zero within a bound, with a message naming what failed; the checkpoints
# must survive; `--resume` must finish the run with the final metrics of an uninterrupted run.
# Prints a table: fault, seconds to detect, steps lost, data lost.
# Usage: fault_test.sh GENTRAIN "MPIEXEC FLAGS"
gentrain=$1
mpiexec=$2
TEST_NAME=fault source "$(dirname "$0")/test_lib.sh"

fault_run_setup "$gentrain"
reference=$($mpiexec -np 3 "$gentrain" train spec.yaml run.dir=reference 2>&1 | final)
[ -n "$reference" ] && pass "uninterrupted run: $reference" || fail "uninterrupted run"

table="| fault | job ended after (from its start) | steps lost | data lost |\n|---|---|---|---|"
# case NAME FAULT BOUND_SECONDS PATTERN [OVERRIDES...]
case_() {
  local name=$1 fault=$2 bound=$3 pattern=$4 step=${2##*:}
  shift 4
  local start out rc seconds
  start=$(date +%s.%N)
  out=$(GENTRAIN_FAULT=$fault timeout 120 $mpiexec -np 3 "$gentrain" train spec.yaml \
        run.dir="$name" "$@" 2>&1)
  rc=$?
  seconds=$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -qE -- "$pattern" <<<"$out"; then
    pass "$name: exit $rc after $seconds s, says '$(grep -oE -- "$pattern" <<<"$out" | head -1)'"
  else
    fail "$name: exit $rc after $seconds s (want non-zero, within 120 s, matching '$pattern')"
    echo "$out" | tail -12
  fi
  if python3 -c "import sys; sys.exit(0 if $seconds <= $bound else 1)"; then
    pass "$name: stopped within $bound s"
  else
    fail "$name: took $seconds s (bound $bound s)"
  fi
  local last
  last=$(ls "$name/checkpoints" 2>/dev/null | grep -E '^step-[0-9]+$' | sort | tail -1)
  local saved=$((10#${last#step-}))
  local resumed
  resumed=$($mpiexec -np 3 "$gentrain" train spec.yaml run.dir="$name" --resume 2>&1 | final)
  local lost="none"
  if [ -n "$resumed" ] && [ "$resumed" = "$reference" ]; then
    pass "$name: resumed from step $saved and ended as the uninterrupted run"
  else
    fail "$name: resume ended with '$resumed', uninterrupted '$reference'"; lost="yes"
  fi
  table+="\n| $name ($fault) | $seconds s | $((step - saved)) (checkpoint every 2) | $lost |"
}
case_ killed "kill@2:7" 30 "process rank 2 .*(signal 9|Killed)"
case_ throwing "throw@1:9" 30 "rank 1/3\] error: injected fault"
# A short watchdog timeout for this case only (start-up on a loaded machine can take seconds).
case_ hanging "hang@2:13" 30 "has not finished after [0-9]+ s" runtime.timeout_s=5

# NaN gradients (one rank's batch poisoned; the all-reduce spreads them): the default policy on
# the CPU stops with a checkpoint of the state before the step, which resumes exactly; `skip`
# skips that update and goes on.
case_ nan-stop "nan@1:5" 30 "training stopped at step 5 on NaN or infinite gradients"
check nan-skip 0 "step 5: update skipped, NaN or infinite gradients \(1 so far" -- \
  env GENTRAIN_FAULT=nan@1:5 $mpiexec -np 3 "$gentrain" train spec.yaml run.dir=nan-skip \
  train.nonfinite=skip

# Slurm's time-limit warning (SIGUSR1) reaching one rank: all ranks agree at the next check,
# checkpoint that step, exit 0 with the run marked preempted; --resume finishes it exactly.
start=$(date +%s.%N)
out=$(GENTRAIN_FAULT=usr1@1:7 timeout 120 $mpiexec -np 3 "$gentrain" train spec.yaml \
      run.dir=signalled run.stop_check_steps=2 2>&1)
rc=$?
seconds=$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")
if [ "$rc" -eq 0 ] && grep -q "stopped at step 8 of 20" <<<"$out" &&
   grep -q "state: preempted" signalled/status && [ -f signalled/checkpoints/step-000000000008/DONE ]; then
  pass "signalled: checkpointed step 8 and exited 0 after $seconds s, marked preempted"
else
  fail "signalled: exit $rc after $seconds s"; echo "$out" | tail -12
fi
resumed=$($mpiexec -np 3 "$gentrain" train spec.yaml run.dir=signalled --resume 2>&1 | final)
if [ -n "$resumed" ] && [ "$resumed" = "$reference" ]; then
  pass "signalled: resumed from step 8 and ended as the uninterrupted run"
  table+="\n| signalled (SIGUSR1 to rank 1 before step 7, checks every 2) | $seconds s, exit 0 | 0 | none |"
else
  fail "signalled: resume ended with '$resumed', uninterrupted '$reference'"
fi

echo -e "$table"
echo "faults: $passes passed, $failures failed"
[ "$failures" -eq 0 ]
