#!/bin/bash
# Side by side on this machine and the same LibTorch: gentrain vs PyTorch eager
# (launch/bench/stargan_pytorch.py) for StarGAN's networks and training iteration as in
# configs/stargan-fashion-mnist-color32.yaml (32x32, 5 domains, 32 channels, 6 residual blocks,
# n_critic 5), one rank x one thread, batch 16; steps a multiple of n_critic. Prints images/s
# and the ratios. STEPS=N, ROUNDS=R, DEVICE=cuda.
# The peer is written as the official solver is; what gentrain does differently computes the
# same values: real and fake images in one critic pass, one translation per step shared by the
# critic and the generator (Note [one translation per step]), and its CPU instance norm
# (Note [instance norm kernel]). Rounds as launch/bench/side-by-side.sh says (4 by default).
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${STEPS:-40}
rounds=${ROUNDS:-4}
source launch/bench/side-by-side.sh
allocator_line
gan_setup
run_ours() {
  $gentrain bench train configs/stargan-fashion-mnist-color32.yaml model.classifier=none \
    runtime.threads=1 runtime.device=$device train.global_batch=16 --steps "$steps" \
    --warmup 5 2>&1 | rate
}
run_peer() {
  $python launch/bench/stargan_pytorch.py --threads 1 --batch 16 --device "$device" \
    --steps "$steps" --warmup 5 "$@" 2>&1 | rate
}
peer_layouts=both  # Note [peer layouts]
interleave "$rounds"
report stargan "${ours[*]}" "${peer[*]}"
