#!/bin/bash
# Side by side on this machine and the same LibTorch: gentrain vs PyTorch eager
# (launch/bench/pixelrnn_pytorch.py) for PixelRNN's three networks on binarized Fashion-MNIST,
# the paper's MNIST shape (7 layers, h = 16), one rank x one thread, batch 16, Adam 1e-3.
# Rounds as launch/bench/side-by-side.sh says; prints images/s and the ratios. STEPS=N, ROUNDS=R.
# Usage: bash launch/bench/pixelrnn-vs-pytorch.sh [variant ...]   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${STEPS:-30}
rounds=${ROUNDS:-3}
source launch/bench/peer-setup.sh
source launch/bench/side-by-side.sh
allocator_line
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(pixelcnn row_lstm diagonal_bilstm)
for variant in "${variants[@]}"; do
  run_ours() {
    build/gentrain bench train configs/pixelrnn-fashion-mnist.yaml model.variant=$variant \
      runtime.threads=1 train.global_batch=16 --steps "$steps" --warmup 2 2>&1 | rate
  }
  run_peer() {
    /usr/bin/python3 launch/bench/pixelrnn_pytorch.py --variant $variant --threads 1 \
      --batch 16 --steps "$steps" --warmup 2 "$@" 2>&1 | rate
  }
  peer_layouts=both  # Note [peer layouts]
  interleave "$rounds"
  report "$variant" "${ours[*]}" "${peer[*]}"
done
