#!/bin/bash
# Side by side on this machine and the same LibTorch: gentrain vs PyTorch eager
# (launch/bench/pgan_pytorch.py) for Progressive GAN's networks and training step, as in
# configs/pgan-fashion-mnist-color32.yaml, one rank x one thread, batch 32, at the resolutions
# the schedule trains: each level stable and while it fades in. Interleaved rounds, best of
# each; prints images/s and the ratio. STEPS=N, ROUNDS=R, DEVICE=cuda (on a GPU machine).
# Usage: bash launch/bench/pgan-vs-pytorch.sh [RES[:fade] ...]   (default: 8:fade 16:fade 32:fade 32)
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${STEPS:-20}
rounds=${ROUNDS:-3}
device=${DEVICE:-cpu}
gentrain=${GENTRAIN:-build/gentrain}
[ "$device" = cpu ] && source launch/bench/peer-setup.sh
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# Debian's PyTorch on this machine (the LibTorch gentrain links); the installed one elsewhere.
python=${PYTHON:-$([ "$device" = cpu ] && echo /usr/bin/python3 || echo python3)}
config=configs/pgan-fashion-mnist-color32.yaml
[ -f datasets/fashion-mnist-color32.h5 ] || {
  [ -f datasets/fashion-mnist.h5 ] || $gentrain data import-idx \
    --dir /usr/share/datasets/fashion-mnist --out datasets/fashion-mnist.h5 >/dev/null
  $gentrain data colorize datasets/fashion-mnist.h5 datasets/fashion-mnist-color32.h5 \
    --seed 1 --size 32 >/dev/null; }
rate() { grep -o 'RESULT images_per_s=[0-9.]*' | tail -1 | cut -d= -f2; }
best() { python3 -c "import sys; print(max(map(float, sys.argv[1:])))" "$@"; }
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
  ours=(); peer=()
  for round in $(seq 1 "$rounds"); do
    ours+=("$($gentrain bench train $config "${schedule[@]}" runtime.threads=1 \
              runtime.device=$device train.global_batch=32 model.batch=[32] \
              --steps "$steps" --warmup 2 2>&1 | rate)")
    peer+=("$($python launch/bench/pgan_pytorch.py --resolution "$res" "${fading[@]}" \
              --threads 1 --batch 32 --device "$device" --steps "$steps" --warmup 2 2>&1 | rate)")
  done
  python3 -c "import sys; o, p = map(float, sys.argv[2:]); print(f'{sys.argv[1]:8s} gentrain {o:7.1f} images/s, PyTorch eager {p:7.1f} images/s: ratio {o / p:.2f}')" \
    "$case" "$(best "${ours[@]}")" "$(best "${peer[@]}")"
done
