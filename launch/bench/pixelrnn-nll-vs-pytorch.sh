#!/bin/bash
# PixelRNN's likelihood and wall time against PyTorch (launch/bench/pixelrnn_pytorch.py, DDP over
# gloo) for the same network, steps, global batch and learning-rate schedule, 2 ranks x 1 thread
# each on this machine: trains each variant STEPS steps, then the exact test NLL over the whole
# test split (nats per image). The two start from different random weights and data orders, so
# their NLLs differ by that noise as well. Usage:
#   bash launch/bench/pixelrnn-nll-vs-pytorch.sh [variant ...]   (default: all three)
# STEPS=N (default 1000), BATCH=B (32), LR=R (1e-3); the rate decays linearly over the last half.
# OUT=DIR keeps the runs and logs there (else a temporary folder, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${STEPS:-1000}
batch=${BATCH:-32}
lr=${LR:-1e-3}
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(pixelcnn row_lstm diagonal_bilstm)
source launch/bench/peer-setup.sh
if [ -n "${OUT:-}" ]; then
  work=$OUT
  mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
for variant in "${variants[@]}"; do
  build/gentrain launch -n 2 --threads 1 train configs/pixelrnn-fashion-mnist.yaml \
    model.variant="$variant" train.steps="$steps" train.global_batch="$batch" \
    optim.pixelrnn.lr="$lr" optim.pixelrnn.decay=linear optim.pixelrnn.decay_start=0.5 \
    eval.every_epochs=0 sample.count=1 checkpoint.every_epochs=0 checkpoint.every_minutes=0 \
    log.every_steps=100 run.dir="$work/$variant" > "$work/$variant.log" 2>&1 ||
    { echo "$variant: gentrain failed, see $work/$variant.log"; tail -5 "$work/$variant.log"; exit 1; }
  ours_nll=$(grep -o 'eval at step [0-9]* (final): nll [0-9.]*' "$work/$variant.log" | tail -1 |
             awk '{print $NF}')
  ours_rate=$(grep -o 'done: step [0-9]*, [0-9.]* images/s' "$work/$variant.log" | head -1 |
              awk '{print $4}')
  /usr/bin/python3 launch/bench/pixelrnn_pytorch.py --ranks 2 --threads 1 --variant "$variant" \
    --batch "$batch" --train-steps "$steps" --lr "$lr" --decay linear --decay-start 0.5 \
    > "$work/$variant.peer" 2>&1
  peer=$(grep -o 'RESULT .*' "$work/$variant.peer")
  peer_seconds=$(echo "$peer" | sed 's/.*train_seconds=\([0-9.]*\).*/\1/')
  peer_nll=$(echo "$peer" | sed 's/.*test_nll=\([0-9.]*\).*/\1/')
  python3 -c "
import sys
v, n, b, on, rate, pn, ps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7])
os_ = n * b / rate
print(f'{v:16s} {n} steps x {b}: test NLL gentrain {on:.2f}, PyTorch {pn:.2f} (difference {on - pn:+.2f} nats);'
      f' training wall time gentrain {os_:.0f} s, PyTorch {ps:.0f} s (PyTorch / gentrain {ps / os_:.2f})')
" "$variant" "$steps" "$batch" "$ours_nll" "$ours_rate" "$peer_nll" "$peer_seconds"
done
