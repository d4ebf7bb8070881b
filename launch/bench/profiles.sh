#!/bin/bash
# Where each model's CPU step goes, on both sides: one profiled run of gentrain (`bench train
# --profile N`, launch/OpProfile.h) and of its PyTorch peer (PEER_PROFILE=N, torch.profiler),
# 1 rank x 1 thread, the same settings as the *-vs-pytorch.sh scripts (allocator and BLAS as
# side-by-side.sh sets them), the TOP operators by self time of each. Figures for the README's
# per-model tables; the ratios themselves come from the *-vs-pytorch.sh scripts (a profiled step
# is slower than an unprofiled one). Usage: profiles.sh [MODEL...] with MODEL among vae vae_conv
# pixelcnn row_lstm diagonal_bilstm pgan16 pgan32 stargan; TOP=N (8).
set -euo pipefail
cd "$(dirname "$0")/../.."
top=${TOP:-8}
source launch/bench/peer-setup.sh
source launch/bench/side-by-side.sh
allocator_line
gan_setup
table() {  # SIDE: the PROFILE table of the output on stdin, its first TOP rows
  awk -v top="$top" -v side="$1" '/^PROFILE/ { on = 1; n = 0; print side ": " $0; next }
    on && /^all recorded/ { print; on = 0; next }
    on && n <= top { print; n++ }
    /^aten::copy_ by/ { print; copies = 1; next }
    copies && /^  in / { print; next }
    { copies = 0 }'
}
pair() {  # NAME STEPS "GENTRAIN ARGS" "PEER ARGS"
  echo "== $1"
  # shellcheck disable=SC2086
  build/gentrain bench train $3 runtime.threads=1 --warmup 2 --steps "$2" --profile "$2" \
    --profile-top "$top" 2>&1 | table gentrain
  # shellcheck disable=SC2086
  PEER_PROFILE=$2 /usr/bin/python3 $4 --threads 1 --warmup 2 --steps "$2" 2>&1 | table pytorch
}
models=("$@")
all=(vae vae_conv pixelcnn row_lstm diagonal_bilstm pgan16 pgan32 stargan)
[ ${#models[@]} -gt 0 ] || models=("${all[@]}")
for m in "${models[@]}"; do
  case $m in
    vae) pair vae 100 "configs/vae-fashion-mnist.yaml" "launch/bench/vae_pytorch.py --batch 128" ;;
    vae_conv) pair "conv vae" 30 "configs/vae-conv-fashion-mnist.yaml" \
      "launch/bench/vae_pytorch.py --arch conv --batch 128" ;;
    pixelcnn | row_lstm | diagonal_bilstm)
      pair "$m" 5 "configs/pixelrnn-fashion-mnist.yaml model.variant=$m train.global_batch=16" \
        "launch/bench/pixelrnn_pytorch.py --variant $m --batch 16" ;;
    pgan16)
      pair "pgan 16x16 fading in" 3 "configs/pgan-fashion-mnist-color32.yaml model.start_resolution=8 \
        model.stable_images=0 model.fade_images=100000000 train.global_batch=32 model.batch=[32]" \
        "launch/bench/pgan_pytorch.py --resolution 16 --fading --batch 32" ;;
    pgan32)
      pair "pgan 32x32 stable" 3 "configs/pgan-fashion-mnist-color32.yaml model.start_resolution=32 \
        model.stable_images=100000000 train.global_batch=32 model.batch=[32]" \
        "launch/bench/pgan_pytorch.py --resolution 32 --batch 32" ;;
    stargan)
      pair stargan 10 "configs/stargan-fashion-mnist-color32.yaml model.classifier=none \
        train.global_batch=16" "launch/bench/stargan_pytorch.py --batch 16" ;;
    *) echo "unknown model '$m' (${all[*]})" >&2
       exit 2 ;;
  esac
done
