#!/bin/bash
# Side by side on this machine and the same LibTorch: gentrain vs PyTorch eager
# (launch/bench/pgan_pytorch.py) for Progressive GAN's networks and training step, as in
# configs/pgan-fashion-mnist-color32.yaml, one rank x one thread, batch 32, at the resolutions
# the schedule trains: each level stable and while it fades in. Rounds as
# launch/bench/side-by-side.sh says; prints images/s and the ratios. STEPS=N, ROUNDS=R,
# DEVICE=cuda (on a GPU machine).
# Usage: bash launch/bench/pgan-vs-pytorch.sh [RES[:fade] ...]   (default: 8:fade 16:fade 32:fade 32)
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${STEPS:-20}
rounds=${ROUNDS:-3}
config=configs/pgan-fashion-mnist-color32.yaml
source launch/bench/side-by-side.sh
allocator_line
gan_setup
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(8:fade 16:fade 32:fade 32)
for case in "${cases[@]}"; do
  res=${case%%:*}
  if [ "$case" != "$res" ]; then
    # Start a level below with no stable stretch: the whole run fades `res` in.
    schedule=(model.start_resolution=$((res / 2)) model.stable_images=0 model.fade_images=100000000)
    fading=(--fading)
  else
    schedule=(model.start_resolution=$res model.stable_images=100000000)
    fading=()
  fi
  run_ours() {
    $gentrain bench train $config "${schedule[@]}" runtime.threads=1 runtime.device=$device \
      train.global_batch=32 model.batch=[32] --steps "$steps" --warmup 2 2>&1 | rate
  }
  run_peer() {
    $python launch/bench/pgan_pytorch.py --resolution "$res" "${fading[@]}" --threads 1 \
      --batch 32 --device "$device" --steps "$steps" --warmup 2 "$@" 2>&1 | rate
  }
  peer_layouts=both  # Note [peer layouts]
  interleave "$rounds"
  report "$case" "${ours[*]}" "${peer[*]}"
done
