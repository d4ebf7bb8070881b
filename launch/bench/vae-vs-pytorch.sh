#!/bin/bash
# Side by side, on this machine and the same LibTorch: gentrain vs PyTorch eager for the default
# VAE (784-400-20, Adam 1e-3, global batch 128), one rank x one thread; then gentrain on 2 ranks
# vs 1 rank, at the same global batch and at the same per-rank batch. Prints images/s and
# ratios. Needs a build (launch/setup.sh); installs python3-torch if missing. STEPS=N per run.
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${STEPS:-400}
source launch/bench/peer-setup.sh
flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
source launch/bench/side-by-side.sh
run_ours() {  # ranks [overrides...]
  local ranks=$1
  shift
  mpirun "${flags[@]}" -np "$ranks" build/gentrain bench train configs/vae-fashion-mnist.yaml \
    runtime.threads=1 "$@" --steps "$steps" --warmup 30 2>&1 | tee -a /dev/stderr | rate
}
run_peer() {
  /usr/bin/python3 launch/bench/vae_pytorch.py --threads 1 --batch 128 --steps "$steps" \
    --warmup 30 2>&1 | tee -a /dev/stderr | rate
}
# This machine's speed drifts by tens of percent from minute to minute: interleave the runs,
# repeat each configuration, and keep each one's best.
o1=(); p1=(); o2=(); o2w=()
for round in 1 2 3; do
  o1+=("$(run_ours 1)")
  p1+=("$(run_peer)")
  o2+=("$(run_ours 2)")
  o2w+=("$(run_ours 2 train.global_batch=256)")
done
python3 - "$(best "${o1[@]}")" "$(best "${p1[@]}")" "$(best "${o2[@]}")" "$(best "${o2w[@]}")" <<'PY'
import sys
ours1, peer1, ours2, ours2w = map(float, sys.argv[1:])
print(f"1 rank x 1 thread, batch 128: gentrain {ours1:.0f} images/s, PyTorch eager "
      f"{peer1:.0f} images/s: ratio {ours1 / peer1:.2f}")
print(f"2 ranks x 1 thread, global batch 128 (64 per rank): {ours2:.0f} images/s = "
      f"{ours2 / ours1:.2f}x one rank")
print(f"2 ranks x 1 thread, global batch 256 (128 per rank): {ours2w:.0f} images/s = "
      f"{ours2w / ours1:.2f}x one rank at 128")
PY
