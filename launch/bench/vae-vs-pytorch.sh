#!/bin/bash
# Side by side, on this machine and the same LibTorch: gentrain vs PyTorch eager for the default
# VAE (784-400-20, Adam 1e-3, global batch 128), one rank x one thread; then gentrain on 2 ranks
# vs 1 rank. Prints images/s and ratios. Needs a build (launch/setup.sh) and python3-torch.
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${STEPS:-400}
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y -qq --no-install-recommends python3-torch python3-numpy >/dev/null
fi
data=datasets/fashion-mnist-bin128.h5
[ -f "$data" ] || build/gentrain data import-idx --dir /usr/share/datasets/fashion-mnist \
  --out "$data" --binarize threshold:128 --labels fashion-mnist
flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
rate() { grep -o 'RESULT images_per_s=[0-9.]*' | tail -1 | cut -d= -f2; }
run_ours() {  # ranks
  mpirun "${flags[@]}" -np "$1" build/gentrain bench train configs/vae-fashion-mnist.yaml \
    runtime.threads=1 --steps "$steps" --warmup 30 2>&1 | tee /dev/stderr | rate
}
run_peer() {
  /usr/bin/python3 launch/bench/vae_pytorch.py --threads 1 --batch 128 --steps "$steps" --warmup 30 \
    2>&1 | tee /dev/stderr | rate
}
# Alternate the two, twice, and keep each one's best: the machine's noise hits both alike.
ours1=0; peer1=0
for round in 1 2; do
  o=$(run_ours 1); p=$(run_peer)
  ours1=$(python3 -c "print(max($ours1, $o))"); peer1=$(python3 -c "print(max($peer1, $p))")
done
ours2=$(run_ours 2)
python3 - "$ours1" "$peer1" "$ours2" <<'PY'
import sys
ours1, peer1, ours2 = map(float, sys.argv[1:])
print(f"1 rank x 1 thread: gentrain {ours1:.0f} images/s, PyTorch eager {peer1:.0f} images/s: "
      f"ratio {ours1 / peer1:.2f}")
print(f"2 ranks x 1 thread: gentrain {ours2:.0f} images/s = {ours2 / ours1:.2f}x one rank")
PY
