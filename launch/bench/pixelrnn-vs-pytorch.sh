#!/bin/bash
# Side by side on this machine and the same LibTorch: gentrain vs PyTorch eager
# (launch/bench/pixelrnn_pytorch.py) for PixelRNN's three networks on binarized Fashion-MNIST,
# the paper's MNIST shape (7 layers, h = 16), one rank x one thread, batch 16, Adam 1e-3.
# Interleaved rounds, best of each; prints images/s and the ratio. STEPS=N, ROUNDS=R.
# Usage: bash launch/bench/pixelrnn-vs-pytorch.sh [variant ...]   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${STEPS:-30}
rounds=${ROUNDS:-3}
source launch/bench/peer-setup.sh
rate() { grep -o 'RESULT images_per_s=[0-9.]*' | tail -1 | cut -d= -f2; }
best() { python3 -c "import sys; print(max(map(float, sys.argv[1:])))" "$@"; }
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(pixelcnn row_lstm diagonal_bilstm)
for variant in "${variants[@]}"; do
  ours=(); peer=()
  for round in $(seq 1 "$rounds"); do
    ours+=("$(build/gentrain bench train configs/pixelrnn-fashion-mnist.yaml model.variant=$variant \
              runtime.threads=1 train.global_batch=16 --steps "$steps" --warmup 2 2>&1 | rate)")
    peer+=("$(/usr/bin/python3 launch/bench/pixelrnn_pytorch.py --variant $variant --threads 1 \
              --batch 16 --steps "$steps" --warmup 2 2>&1 | rate)")
  done
  python3 -c "import sys; o, p = map(float, sys.argv[2:]); print(f'{sys.argv[1]:16s} gentrain {o:7.1f} images/s, PyTorch eager {p:7.1f} images/s: ratio {o / p:.2f}')" \
    "$variant" "$(best "${ours[@]}")" "$(best "${peer[@]}")"
done
