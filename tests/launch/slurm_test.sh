#!/bin/bash
# gentrain under a real (one-node, private) Slurm: `gentrain submit` of a 2-rank job that
# completes; the time-limit warning (SIGUSR1) mid-run: checkpoint, requeue, resume, and the
# final weights equal those of an uninterrupted run; a user's scancel: checkpoint, no requeue;
# preemption by a higher-tier job: checkpoint, Slurm's requeue, resume, the same weights; a 2x2 sweep as a job array with its summary;
# Slurm and MPI disagreeing on the ranks: an error, not a hang.
# Skips (exit 77, CTest says "Skipped") only when Slurm or munge are not installed or not root.
# Usage: slurm_test.sh GENTRAIN "MPIEXEC FLAGS"
gentrain=$1
mpiexec=$2
here=$(cd "$(dirname "$0")" && pwd)
TEST_NAME=slurm source "$here/test_lib.sh"
source "$here/slurm_cluster.sh"
why=$(slurm_missing)
if [ -n "$why" ]; then
  echo "SKIPPED: no Slurm test: $why"
  exit 77
fi
trap 'slurm_stop; rm -rf "$work"' EXIT
slurm_start "$work/cluster" 4 || { cat "$work"/cluster/*.log | tail -20; exit 1; }
pass "one-node Slurm cluster up ($(sinfo -h -o '%N %c CPUs %t'))"

make_idx 3 96 16 "0 255"
"$gentrain" data import-idx --dir . --out data.h5 >import.log 2>&1 || { echo "FAIL import"; cat import.log; exit 1; }
tiny_vae_spec basic \
  'train: {global_batch: 8, epochs: 2}' \
  'log: {every_steps: 4}' \
  'eval: {batch: 4}' \
  'sample: {count: 4, every_epochs: 0}' \
  'checkpoint: {every_epochs: 1}' > spec.yaml

# job_of OUTPUT: the job id in `gentrain submit`'s answer.
job_of() { grep -oE "submitted job [0-9]+" <<<"$1" | grep -oE "[0-9]+$"; }
digest_of() { "$gentrain" export "$1" -o "$work/$2.h5" 2>&1 | grep -oE "digest [0-9a-f]+"; }

# 1. A 2-rank job, launched with mpirun inside the allocation.
out=$("$gentrain" submit spec.yaml --ntasks-per-node 2 --launcher mpirun 2>&1)
job=$(job_of "$out")
if [ -n "$job" ] && slurm_wait "$job" 120 && grep -q "state: finished" runs/basic/status &&
   [ -f runs/basic/checkpoints/step-000000000024/DONE ] && grep -q '"split": "test"' runs/basic/metrics.jsonl &&
   grep -q "runtime: 2 rank(s)" runs/basic/slurm-$job.out; then
  pass "submit (mpirun launcher): job $job finished on 2 ranks, checkpoint and metrics there"
else
  fail "submit (mpirun launcher): '$out'"; tail -n 15 runs/basic/slurm-*.out
fi
check submit-bad-partition 1 "sbatch refused the job: .*[Ii]nvalid partition.*nothing was submitted" -- \
  "$gentrain" submit spec.yaml name=badpart --partition nosuchpartition
[ ! -e runs/badpart ] && pass "submit-bad-partition: left nothing behind" || fail "submit-bad-partition: runs/badpart exists"
check submit-refuses-existing-run 1 "runs/basic already holds a run .*pass --resume" -- \
  "$gentrain" submit spec.yaml --ntasks-per-node 2

# 2. The time-limit warning mid-run. Rank 0 pauses before step 6 until a stop signal arrives
# (GENTRAIN_FAULT=pause, which sbatch passes on with the environment), so the signal certainly
# lands mid-run; the ranks agree at the next step boundary, checkpoint step 7, rank 0 requeues,
# and the restarted job resumes there and finishes. srun: Slurm signals the ranks; mpirun: only
# the batch shell (--batch), whose trap passes the signal to mpirun, which passes it on.
$mpiexec -np 2 "$gentrain" train spec.yaml name=reference >/dev/null 2>&1
reference=$(digest_of runs/reference reference)
[ -n "$reference" ] && pass "uninterrupted reference run: $reference" || fail "reference run"
preempt_case() {  # NAME LAUNCHER SCANCEL-FLAGS...
  local name=$1 launcher=$2 out job i signalled seconds resumed
  shift 2
  out=$(GENTRAIN_FAULT=pause@0:6 "$gentrain" submit spec.yaml name=$name run.stop_check_steps=1 \
        --ntasks-per-node 2 --launcher "$launcher" 2>&1)
  job=$(job_of "$out")
  for i in $(seq 1 120); do
    grep -qs "injecting 'pause'" runs/$name/logs/rank-0.log && break
    sleep 0.5
  done
  signalled=$(date +%s.%N)
  scancel --signal=USR1 "$@" "$job"
  for i in $(seq 1 120); do
    grep -qs "checkpoint complete" runs/$name/logs/rank-0.log && break
    sleep 0.25
  done
  seconds=$(python3 -c "print(f'{$(date +%s.%N) - $signalled:.2f}')")
  if slurm_wait "$job" 180 && grep -q "stop: requeued Slurm job $job" runs/$name/slurm-$job.out &&
     grep -q "restart 1" runs/$name/slurm-$job.out &&
     grep -q "resume: continuing from .*step-000000000007 at step 7" runs/$name/slurm-$job.out &&
     grep -q "state: finished" runs/$name/status; then
    pass "$name ($launcher): SIGUSR1 -> checkpoint of step 7 (<= $seconds s) -> requeued -> resumed -> finished"
  else
    fail "$name ($launcher): job '$job'"; tail -n 30 runs/$name/slurm-*.out
  fi
  resumed=$(digest_of runs/$name $name)
  if [ -n "$resumed" ] && [ "$resumed" = "$reference" ]; then
    pass "$name: final weights equal the uninterrupted run's ($resumed)"
  else
    fail "$name: final weights '$resumed', uninterrupted '$reference'"
  fi
  grep -h "checkpoint complete" runs/$name/logs/rank-*.log | sed 's/^/     /'
}
preempt_case preempted srun
preempt_case preempted-mpirun mpirun --batch

# submit_paused NAME LAUNCHER: submits the spec with rank 0 paused before step 6 until a stop
# signal arrives (as above); prints the job id once the pause is reached.
submit_paused() {
  local out job i
  out=$(GENTRAIN_FAULT=pause@0:6 "$gentrain" submit spec.yaml name=$1 run.stop_check_steps=1 \
        --ntasks-per-node 2 --launcher "$2" 2>&1)
  job=$(job_of "$out")
  for i in $(seq 1 120); do
    grep -qs "injecting 'pause'" runs/$1/logs/rank-0.log && break
    sleep 0.5
  done
  echo "$job"
}
job_field() { scontrol show job "$1" -o 2>/dev/null | grep -oE "$2=[^ ]*" | head -1; }

# 2b. A user's cancel (plain scancel: SIGTERM) stops the job for good: the ranks write the
# checkpoint of step 7 and exit, nothing requeues it, and it ends CANCELLED, never restarted.
job=$(submit_paused cancelled mpirun)
scancel "$job"
if slurm_wait "$job" 60 && [ "$(job_field "$job" JobState)" = "JobState=CANCELLED" ] &&
   [ "$(job_field "$job" Restarts)" = "Restarts=0" ] &&
   [ -f runs/cancelled/checkpoints/step-000000000007/DONE ] &&
   grep -q "stop: not requeued (SIGTERM" runs/cancelled/logs/rank-0.log &&
   grep -q "state: stopped" runs/cancelled/status; then
  pass "cancel (mpirun): scancel -> checkpoint of step 7 -> CANCELLED, not requeued"
else
  fail "cancel: job '$job' $(job_field "$job" JobState) $(job_field "$job" Restarts)"
  tail -n 20 runs/cancelled/slurm-*.out runs/cancelled/logs/rank-0.log
fi

# 2c. Preemption: a job in the higher-tier partition needs the whole node, so Slurm preempts the
# training job (SIGTERM), which checkpoints step 7 and exits without requeueing itself; Slurm
# requeues it, and once the urgent job is done it resumes and ends as an uninterrupted run.
job=$(submit_paused preempted-by-slurm srun)
urgent=$(sbatch --parsable -p urgent -n 4 -o /dev/null --wrap "sleep 2")
for i in $(seq 1 240); do
  grep -qs "restart 1" runs/preempted-by-slurm/slurm-$job.out && break
  sleep 0.5
done
if slurm_wait "$job" 180 && [ "$(job_field "$job" JobState)" = "JobState=COMPLETED" ] &&
   grep -q "stop: not requeued (SIGTERM" runs/preempted-by-slurm/slurm-$job.out &&
   grep -q "resume: continuing from .*step-000000000007 at step 7" runs/preempted-by-slurm/slurm-$job.out &&
   grep -q "state: finished" runs/preempted-by-slurm/status &&
   [ "$(digest_of runs/preempted-by-slurm preempted-by-slurm)" = "$reference" ]; then
  pass "preemption (srun): urgent job $urgent -> SIGTERM -> checkpoint of step 7 -> Slurm requeued -> resumed -> same weights"
else
  fail "preemption: job '$job' $(job_field "$job" JobState) $(job_field "$job" Restarts)"
  tail -n 30 runs/preempted-by-slurm/slurm-*.out
fi

# 3. A 2x2 sweep: a job array of 4 tasks, each in its own run directory; `gentrain runs` sums up.
cat spec.yaml > sweep.yaml
printf 'sweep:\n  optim.vae.lr: [0.01, 0.02]\n  model.latent: [2, 3]\n' >> sweep.yaml
out=$("$gentrain" submit sweep.yaml name=sweep --ntasks-per-node 2 2>&1)
job=$(job_of "$out")
summary=$("$gentrain" runs runs/sweep 2>&1)
if [ -n "$job" ] && slurm_wait "$job" 240 && summary=$("$gentrain" runs runs/sweep 2>&1) &&
   [ "$(grep -c "finished" <<<"$summary")" -eq 4 ] && grep -qE "task-3 +vae +3 +0.02 " <<<"$summary"; then
  pass "sweep: array job $job ran 4 combinations"
else
  fail "sweep: '$out'"; tail -n 5 runs/sweep/slurm-*.out
fi
echo "$summary" | sed 's/^/     /'

# 4. Slurm and MPI disagreeing must end in an error, not a hang. mpirun under srun: each of
# srun's 2 tasks starts an MPI job of its own.
check slurm-mpi-mismatch 1 "srun started 2 tasks \(SLURM_STEP_NUM_TASKS\) but MPI sees a world of 1" -- \
  timeout 60 srun -n 2 $mpiexec -np 1 "$gentrain" train spec.yaml name=mismatch
check slurm-mpi-mismatch-ranks 1 "SLURM_PROCID is 0 but MPI made this process rank 1 of 2" -- \
  timeout 60 srun -n 2 $mpiexec -np 2 "$gentrain" train spec.yaml name=mismatch2
# srun without an MPI plugin: Open MPI itself refuses (says to use PMIx) rather than hang.
check slurm-no-mpi-plugin 1 "PMI|pmix|PMIx" -- \
  timeout 60 srun --mpi=none -n 2 "$gentrain" train spec.yaml name=mismatch3

echo "slurm: $passes passed, $failures failed"
[ "$failures" -eq 0 ]
