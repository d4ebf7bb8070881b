#!/bin/bash
# End-to-end checks of the command-line tool: data import, info, bad input, a 2-rank training run
# with checkpoints, resume, and a refused overwrite. Usage: cli_test.sh GENTRAIN "MPIEXEC FLAGS"
gentrain=$1
mpiexec=$2
TEST_NAME=cli source "$(dirname "$0")/test_lib.sh"

# A tiny MNIST-layout folder: 64 train and 16 test 4x4 images.
make_idx 1 64 16 "0 40 200 255"

check import 0 "wrote data.h5 \(train 64, test 16" -- \
  "$gentrain" data import-idx --dir . --out data.h5 --binarize threshold:128
check import-refuses-overwrite 1 "already exists; pass --force" -- \
  "$gentrain" data import-idx --dir . --out data.h5
check info 0 "split 'train': 64 images, uint8 \[64, 1, 4, 4\]" -- "$gentrain" data info data.h5
check binarize-stochastic 0 "binarize stochastic:3" -- \
  "$gentrain" data binarize data.h5 stoch.h5 --binarize stochastic:3
mkdir -p bad && head -c 300 train-images-idx3-ubyte > bad/train-images-idx3-ubyte
cp train-labels-idx1-ubyte t10k-* bad/
check truncated-idx 1 "bad/train-images-idx3-ubyte: truncated" -- \
  "$gentrain" data import-idx --dir bad --out bad.h5
check keys 0 "train.global_batch \(integer\)  default: 128" -- "$gentrain" keys --model vae

tiny_vae_spec cli \
  'train: {global_batch: 8, epochs: 2}' \
  'log: {every_steps: 4}' \
  'eval: {batch: 4}' \
  'sample: {count: 4}' > spec.yaml
# The per-operator profile: the tiny VAE's linear layers appear, with calls and times per step.
# (Started the way a user starts it: on a CPU OpenBLAS does not know, it starts itself again.)
check bench-profile 0 "^aten::addmm +[0-9.]+ +[0-9.]+ +[0-9.]+%$" -- \
  env -u GENTRAIN_BLAS_REEXEC "$gentrain" bench train spec.yaml --steps 2 --warmup 1 --profile 2 --profile-top 40
check unknown-key 1 "command line \\(train.epoch=3\\): unknown key 'train.epoch'; did you mean 'train.epochs'" -- \
  "$gentrain" train spec.yaml train.epoch=3
sed 's/epochs: 2}/epochs: 2, epoch: 1}/' spec.yaml > typo.yaml
check unknown-key-file 1 "typo.yaml:5:[0-9]+: unknown key 'train.epoch'; did you mean" -- "$gentrain" train typo.yaml
check bad-batch 1 "global_batch = 9 does not divide by the 2 ranks" -- \
  $mpiexec -np 2 "$gentrain" train spec.yaml train.global_batch=9
check missing-data 1 "nothere.h5: not an HDF5 file, or it does not exist" -- \
  "$gentrain" train spec.yaml data.path=nothere.h5
# Slurm and MPI disagreeing: srun without an MPI plugin (each task a world of 1), and ranks
# that Slurm numbers otherwise than MPI.
check slurm-singletons 1 "srun started 3 tasks \(SLURM_STEP_NUM_TASKS\) but MPI sees a world of 1" -- \
  env SLURM_STEP_NUM_TASKS=3 SLURM_PROCID=2 "$gentrain" train spec.yaml
check slurm-procid 1 "SLURM_PROCID is 1 but MPI made this process rank 0 of 2" -- \
  env SLURM_STEP_NUM_TASKS=2 SLURM_PROCID=1 $mpiexec -np 2 "$gentrain" train spec.yaml
# mpirun inside an allocation: the ranks under daemons that srun started on other nodes see a
# step of one task per node, the ones on the batch host none. They must still start together
# (the start-up check once had only the first kind vote, and the job hung).
check slurm-step-on-some-ranks 0 "bench allreduce: 2 ranks" -- \
  timeout 60 $mpiexec -np 1 "$gentrain" bench allreduce --mb 0.01 --iterations 1 : \
  -np 1 env SLURM_STEP_NUM_TASKS=1 SLURM_PROCID=0 SLURM_LOCALID=0 "$gentrain" bench allreduce \
  --mb 0.01 --iterations 1
(mkdir -p small && cd small && make_idx 3 9 2 "0 255" &&
 "$gentrain" data import-idx --dir . --out ../small.h5 >/dev/null 2>&1)
check more-ranks-than-test-images 1 "small.h5:/test has 2 images, fewer than the 3 ranks" -- \
  $mpiexec -np 3 "$gentrain" train spec.yaml data.path=small.h5 train.global_batch=3 run.dir=small-run
check train-2-ranks 0 "eval at step 16 \(final\): elbo" -- $mpiexec -np 2 "$gentrain" train spec.yaml
for f in runs/cli/spec.yaml runs/cli/metrics.jsonl runs/cli/samples/step-000000000016.png \
         runs/cli/checkpoints/step-000000000016/DONE runs/cli/logs/rank-1.log; do
  if [ -s "$f" ]; then echo "ok   exists $f"; passes=$((passes + 1)); else echo "FAIL missing $f"; failures=$((failures + 1)); fi
done
check no-overwrite 1 "already holds a run with checkpoints: pass --resume" -- \
  "$gentrain" train spec.yaml
check resume-more-epochs 0 "resume: continuing from .*step-000000000016 at step 16" -- \
  $mpiexec -np 2 "$gentrain" train spec.yaml train.epochs=3 --resume
check resume-other-model 1 "model.hidden: \[8\] -> \[9\]" -- \
  "$gentrain" train spec.yaml model.hidden=[9] --resume

# Evaluation from a checkpoint: the same numbers on 1 and 2 ranks, printed to full precision.
one=$("$gentrain" eval runs/cli 2>&1 | grep "eval elbo")
two=$($mpiexec -np 2 "$gentrain" eval runs/cli/checkpoints/step-000000000024 2>&1 | grep "eval elbo")
if [ -n "$one" ] && [ "$one" = "${two/rank 0\/2/rank 0/1}" ]; then
  echo "ok   eval-same-on-1-and-2-ranks ($one)"; passes=$((passes + 1))
else
  echo "FAIL eval-same-on-1-and-2-ranks: '$one' vs '$two'"; failures=$((failures + 1))
fi
check eval-missing 1 "nowhere: neither a checkpoint folder" -- "$gentrain" eval nowhere
check sample 0 "wrote grid.png" -- "$gentrain" sample runs/cli -n 9 -o grid.png
[ -s grid.png ] && { echo "ok   exists grid.png"; passes=$((passes + 1)); } || { echo "FAIL missing grid.png"; failures=$((failures + 1)); }

check sample-h5 0 "wrote samples.h5" -- "$gentrain" sample runs/cli -n 5 -o samples.h5
check sample-h5-info 0 "split 'samples': 5 images, uint8 \[5, 1, 4, 4\]" -- "$gentrain" data info samples.h5
check sample-h5-no-overwrite 1 "samples.h5.*--force" -- "$gentrain" sample runs/cli -n 5 -o samples.h5

# Weights export: refuses to overwrite; h5py (when this machine has it) reads it by model names.
check export 0 "wrote weights.h5: 1 network\(s\), [0-9]+ tensors" -- \
  "$gentrain" export runs/cli -o weights.h5
check export-no-overwrite 1 "weights.h5 exists; pass --force" -- "$gentrain" export runs/cli -o weights.h5
# compare-weights: the step-16 checkpoint against the final one differ; a file against itself not.
"$gentrain" export runs/cli/checkpoints/step-000000000016 -o weights16.h5 >/dev/null 2>&1
check compare-weights-same 0 "tensors compared; largest difference 0, within the tolerance 0" -- \
  "$gentrain" compare-weights weights.h5 weights.h5
check compare-weights-differ 1 "largest difference [0-9.e-]+ in vae/[a-z0-9.]+, over the tolerance 1e-06" -- \
  "$gentrain" compare-weights weights.h5 weights16.h5 --tolerance 1e-6
check compare-weights-not-weights 1 "data.h5: not a weights file of .gentrain export." -- \
  "$gentrain" compare-weights weights.h5 data.h5
py=""
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c 'import h5py' 2>/dev/null; then py=$candidate; break; fi
done
if [ -n "$py" ]; then
  check export-h5py 0 "encoder.1.weight \(8, 16\) vae step 24" -- "$py" -c '
import h5py
f = h5py.File("weights.h5", "r")
print("encoder.1.weight", f["vae"]["encoder.1.weight"].shape, f.attrs["model"], "step", f.attrs["step"])'
else
  echo "skip export-h5py (no python3 h5py here)"
fi

# Checkpoints by time: rank 0's clock decides at each stop check (every 4 steps here), so both
# ranks write the same ones (disagreeing ranks would hang in the collective write).
$mpiexec -np 2 "$gentrain" train spec.yaml run.dir=timed checkpoint.every_minutes=0.00001 \
  checkpoint.every_epochs=0 checkpoint.keep=10 run.stop_check_steps=4 >/dev/null 2>&1
timed=$(ls timed/checkpoints 2>/dev/null | tr '\n' ' ')
if [ "$timed" = "step-000000000004 step-000000000008 step-000000000012 step-000000000016 " ]; then
  pass "checkpoint.every_minutes: $timed"
else
  fail "checkpoint.every_minutes: got '$timed'"
fi

# Runs: the real run (finished), a failed one and one whose process is gone, all in one table.
mkdir -p runs/failed runs/gone
cp runs/cli/spec.yaml runs/failed/ && cp runs/cli/spec.yaml runs/gone/
sed -i 's/^seed: .*/seed: 99/' runs/failed/spec.yaml
printf 'state: failed\nerror: "data.h5: read failed"\nworld: 2\n' > runs/failed/status
printf 'state: running\nhost: %s\npid: 999999999\nworld: 3\n' "$(hostname)" > runs/gone/status
# The seed differs between the runs, so it gets a column.
check runs-table 0 "run +model +seed +ranks.*cli +vae +1234 +2 +24 +finished +[0-9.]+ +elbo" -- \
  bash -c "'$gentrain' runs runs | tr '\n' ' '"
check runs-failed 0 "failed +vae +99 +2 +- +failed +- +error: data.h5: read failed" -- "$gentrain" runs runs
check runs-stopped 0 "gone +vae +1234 +3 +- +stopped" -- "$gentrain" runs runs
check runs-compare 0 "seed: 1234 \| 99" -- "$gentrain" runs --compare runs/cli runs/failed
check runs-not-a-run 1 "nowhere is not a run directory" -- "$gentrain" runs --compare runs/cli nowhere

echo "cli: $passes passed, $failures failed"
[ "$failures" -eq 0 ]
