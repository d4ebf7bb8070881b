#!/bin/bash
# Side by side on this machine and the same LibTorch: gentrain vs PyTorch eager
# (launch/bench/stargan_pytorch.py) for StarGAN's networks and training iteration as in
# configs/stargan-fashion-mnist-color32.yaml (32x32, 5 domains, 32 channels, 6 residual blocks,
# n_critic 5), one rank x one thread, batch 16; steps a multiple of n_critic. Interleaved
# rounds, best of each; prints images/s and the ratio. STEPS=N, ROUNDS=R, DEVICE=cuda.
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
rate() { grep -o 'RESULT images_per_s=[0-9.]*' | tail -1 | cut -d= -f2; }
best() { python3 -c "import sys; print(max(map(float, sys.argv[1:])))" "$@"; }
ours=(); peer=()
for round in $(seq 1 "$rounds"); do
  ours+=("$($gentrain bench train configs/stargan-fashion-mnist-color32.yaml model.classifier=none \
            runtime.threads=1 runtime.device=$device train.global_batch=16 --steps "$steps" \
            --warmup 5 2>&1 | rate)")
  peer+=("$($python launch/bench/stargan_pytorch.py --threads 1 --batch 16 --device "$device" \
            --steps "$steps" --warmup 5 2>&1 | rate)")
done
python3 -c "import sys; o, p = map(float, sys.argv[1:]); print(f'stargan  gentrain {o:7.1f} images/s, PyTorch eager {p:7.1f} images/s: ratio {o / p:.2f}')" \
  "$(best "${ours[@]}")" "$(best "${peer[@]}")"
