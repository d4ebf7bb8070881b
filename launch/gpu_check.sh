#!/bin/bash
# The GPU check, in one go (made to fit in 10 minutes on one GPU):
#   1. builds gentrain against the CUDA LibTorch of the installed PyTorch (NCCL when nccl.h is
#      there) into build-gpu/;
#   2. runs the CTest label `gpu` (GPU unit checks; the multi-rank tests with both ranks on the
#      one GPU over the MPI backend) and the rest of the suite on this build;
#   3. reads a short run's TensorBoard event files with TensorBoard's own Python reader;
#   4. benchmarks the VAE and PixelRNN side by side with PyTorch eager on the same GPU (the VAE in fp32 and bf16), and
#      prints images/s and ratios; the reducer's cost on one rank (always on vs off, overlap on vs
#      off); the VAE with and without its step captured as a CUDA graph (train.cuda_graph); and
#      the GPU's busy share (NVML utilisation: the share of time a kernel ran).
# Usage: bash launch/gpu_check.sh [OUT_DIR]   (logs go to OUT_DIR, default /tmp/gentrain-gpu)
# Needs: python3 with a CUDA torch, cmake, ninja, MPI, HDF5, yaml-cpp, GoogleTest, libpng/jpeg,
# h5py; for step 3 protobuf (headers and protoc) and Python's tensorboard;
# datasets/fashion-mnist-bin128.h5 (made by `gentrain data import-idx --binarize
# threshold:128`, or carried in) for the benchmark. STEPS=N sets the timed steps per run;
# REST=REGEX picks which of the other CTest tests run (default all).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-/tmp/gentrain-gpu}}
mkdir -p "$out"
steps=${STEPS:-2000}
rounds=${ROUNDS:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
summary="$out/summary.txt"
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }

say "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)') || {
  say "FAIL: no python3 torch"; exit 1; }
say "torch $(python3 -c 'import torch; print(torch.__version__, torch.version.cuda)')"

# 1. Build (keep going past errors so one run shows them all).
start=$(date +%s)
if ! cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
    >"$out/configure.log" 2>&1; then
  say "FAIL: configure (see $out/configure.log)"; tail -40 "$out/configure.log"; exit 1
fi
grep -E "gentrain: CUDA graphs" "$out/configure.log" | tee -a "$summary"
if ! timeout 420 cmake --build build-gpu -- -k 0 >"$out/build.log" 2>&1; then
  say "FAIL: build (see $out/build.log)"
  grep -E "error|Error" -A4 "$out/build.log" | head -120
  exit 1
fi
say "build: $(( $(date +%s) - start )) s"

# 2. Tests: the GPU label first, then everything else on this build.
GTEST_COLOR=no timeout 300 ctest --test-dir build-gpu -L gpu -V >"$out/ctest-gpu.log" 2>&1
say "ctest -L gpu: rc $? | $(grep -E 'tests passed|tests failed' "$out/ctest-gpu.log")"
# Each GPU check by name, so a skip cannot pass for a pass.
grep -E "(OK|SKIPPED|FAILED) +\] .* \([0-9]+ ms\)" "$out/ctest-gpu.log" | head -40 |
  tee -a "$summary"
timeout 300 ctest --test-dir build-gpu -LE gpu -R "${REST:-.}" --output-on-failure \
  >"$out/ctest-rest.log" 2>&1
say "ctest (not gpu): rc $? | $(grep -E 'tests passed|tests failed' "$out/ctest-rest.log")"
grep -E "FAILED|Failure" "$out/ctest-rest.log" | head -20 | tee -a "$summary"

# 3. TensorBoard's own reader on a short run's event files (needs protobuf in this build and
#    Python's tensorboard).
data=datasets/fashion-mnist-bin128.h5
if [ ! -f "$data" ] && [ -d /usr/share/datasets/fashion-mnist ]; then
  build-gpu/gentrain data import-idx --dir /usr/share/datasets/fashion-mnist --out "$data" \
    --binarize threshold:128 --labels fashion-mnist >"$out/import.log" 2>&1
fi
if [ ! -f "$data" ]; then
  say "no $data and no Fashion-MNIST to import: TensorBoard check and benchmarks skipped"; exit 0
fi
if grep -q "TensorBoard event files ON" "$out/configure.log" && python3 -c 'import tensorboard' 2>/dev/null; then
  tb=$(mktemp -d /tmp/gentrain-tb-XXXX)
  timeout 120 build-gpu/gentrain train configs/vae-fashion-mnist.yaml data.path="$data" \
    train.steps=40 log.every_steps=10 model.iw_samples=0 run.dir="$tb/run" >"$out/tb-run.log" 2>&1
  python3 - "$tb/run" <<'PY' 2>&1 | tee -a "$summary"
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1] + "/tensorboard", size_guidance={"images": 0, "scalars": 0})
acc.Reload()
tags = acc.Tags()
loss = [(e.step, round(e.value, 2)) for e in acc.Scalars("train/loss")]
print(f"tensorboard reads our file: {len(tags['scalars'])} scalar tags, images {tags['images']}, "
      f"train/loss {loss}")
PY
else
  say "TensorBoard read check skipped (this build has no protobuf, or Python has no tensorboard)"
fi

# 4. Benchmarks, interleaved, best of ROUNDS rounds each (BENCH=0 skips them).
[ "${BENCH:-1}" = 0 ] && exit 0
rate() { grep -o 'RESULT images_per_s=[0-9.]*' | tail -1 | cut -d= -f2; }
# Both sides under gentrain's allocator settings (Note [fair peer] in side-by-side.sh).
export MALLOC_MMAP_THRESHOLD_=$((256 << 20)) MALLOC_TRIM_THRESHOLD_=$((512 << 20))
say "allocator: glibc, MALLOC_MMAP_THRESHOLD_=$MALLOC_MMAP_THRESHOLD_ MALLOC_TRIM_THRESHOLD_=$MALLOC_TRIM_THRESHOLD_ on both sides"
ours() {  # tag [args...]
  local tag=$1; shift
  timeout 120 build-gpu/gentrain bench train configs/vae-fashion-mnist.yaml data.path="$data" \
    runtime.threads=1 --steps "$steps" --warmup 200 "$@" >"$out/ours-$tag.log" 2>&1
  rate <"$out/ours-$tag.log"
}
peer() {  # tag [args...]
  local tag=$1; shift
  timeout 120 python3 launch/bench/vae_pytorch.py --device cuda --h5 "$data" --threads 1 \
    --steps "$steps" --warmup 200 "$@" >"$out/peer-$tag.log" 2>&1
  rate <"$out/peer-$tag.log"
}
best() { python3 -c "import sys; v=[float(x) for x in sys.argv[1:] if x]; print(max(v) if v else 0)" "$@"; }
declare -A r
for round in $(seq "$rounds"); do
  r[o32]+=" $(ours fp32)";        r[p32]+=" $(peer fp32)"
  r[o32e]+=" $(ours fp32-eager train.cuda_graph=off)"
  r[o16]+=" $(ours bf16 train.precision=bf16)"; r[p16]+=" $(peer bf16 --bf16)"
  r[o32b]+=" $(ours fp32-b1024 train.global_batch=1024)"
  r[p32b]+=" $(peer fp32-b1024 --batch 1024)"
  r[oconv]+=" $(ours conv model.arch=conv)"
  r[red]+=" $(ours reducer --reducer-always)"; r[nored]+=" $(ours noreducer)"
  r[redseq]+=" $(ours reducer-no-overlap --reducer-always train.overlap=false)"
done
for k in "${!r[@]}"; do declare "b_$k=$(best ${r[$k]})"; done
ratio() { python3 -c "import sys; a,b=map(float,sys.argv[1:]); print(f'{a/b:.2f}' if b else 'n/a')" "$1" "$2"; }
say "VAE 784-400-20, batch 128, fp32: gentrain $b_o32 img/s, PyTorch eager $b_p32 img/s: ratio $(ratio "$b_o32" "$b_p32")"
say "VAE 784-400-20, batch 128, fp32, no CUDA graph (train.cuda_graph=off): gentrain $b_o32e img/s: ratio $(ratio "$b_o32e" "$b_p32") to PyTorch eager; the graph's gain $(ratio "$b_o32" "$b_o32e")x"
say "VAE 784-400-20, batch 128, bf16: gentrain $b_o16 img/s, PyTorch eager $b_p16 img/s: ratio $(ratio "$b_o16" "$b_p16")"
say "VAE 784-400-20, batch 1024, fp32: gentrain $b_o32b img/s, PyTorch eager $b_p32b img/s: ratio $(ratio "$b_o32b" "$b_p32b")"
say "conv VAE, batch 128, fp32: gentrain $b_oconv img/s"
say "reducer on one rank (NCCL): always on $b_red img/s vs off $b_nored img/s: step time +$(python3 -c "print(f'{($b_nored/$b_red-1)*100:.1f}')")%; without overlap $b_redseq img/s"
grep -h "bench train" "$out"/ours-*.log | sed 's/^.*bench train/bench train/' | sort | uniq | head -20 >>"$summary"

# PixelRNN's three networks (7 layers, h = 16, batch 32), same networks in PyTorch eager.
for variant in pixelcnn row_lstm diagonal_bilstm; do
  o=$(timeout 120 build-gpu/gentrain bench train configs/pixelrnn-fashion-mnist.yaml data.path="$data" \
        model.variant=$variant runtime.threads=1 train.global_batch=32 --steps 100 --warmup 10 \
        2>&1 | tee "$out/ours-pixelrnn-$variant.log" | rate)
  p=$(timeout 120 python3 launch/bench/pixelrnn_pytorch.py --device cuda --variant $variant \
        --batch 32 --steps 100 --warmup 10 2>&1 | tee "$out/peer-pixelrnn-$variant.log" | rate)
  say "PixelRNN $variant, batch 32: gentrain ${o:-0} img/s, PyTorch eager ${p:-0} img/s: ratio $(ratio "${o:-0}" "${p:-0}")"
done

# The GANs side by side with PyTorch eager on the GPU (coloured Fashion-MNIST at 32x32 for
# gentrain's side, made here from the carried or installed Fashion-MNIST when missing).
color=datasets/fashion-mnist-color32.h5
(source launch/bench/side-by-side.sh && GENTRAIN=build-gpu/gentrain color_data) >/dev/null 2>&1 || true
if [ -f "$color" ]; then
  GENTRAIN=build-gpu/gentrain DEVICE=cuda STEPS=50 ROUNDS=1 timeout 240 \
    bash launch/bench/pgan-vs-pytorch.sh 16:fade 32 2>&1 | sed 's/^/Progressive GAN /' | tee -a "$summary"
  GENTRAIN=build-gpu/gentrain DEVICE=cuda STEPS=50 ROUNDS=1 timeout 180 \
    bash launch/bench/stargan-vs-pytorch.sh 2>&1 | sed 's/^/StarGAN /' | tee -a "$summary"
else
  say "no $color: the GAN benchmarks are skipped"
fi

# GPU busy share while training (NVML samples every 50 ms): launch-bound models show it.
util() {  # tag [args...]
  local tag=$1; shift
  nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 50 >"$out/util-$tag.csv" 2>/dev/null &
  local smi=$!
  sleep 0.3
  "$@" >"$out/util-run-$tag.log" 2>&1
  kill $smi 2>/dev/null; wait $smi 2>/dev/null
  # The middle of the samples: start-up and shutdown are not training.
  python3 - "$out/util-$tag.csv" <<'PY'
import sys
v = [float(x) for x in open(sys.argv[1]) if x.strip().replace('.', '').isdigit()]
mid = v[len(v) // 4: max(len(v) // 4 + 1, 3 * len(v) // 4)]
print(f"{sum(mid) / len(mid):.0f}% over {len(mid)} samples" if mid else "no samples")
PY
}
say "GPU busy share, gentrain VAE fp32: $(util ours build-gpu/gentrain bench train configs/vae-fashion-mnist.yaml data.path=$data --steps $((steps * 4)) --warmup 200)"
say "GPU busy share, gentrain VAE fp32, no CUDA graph: $(util ours-eager build-gpu/gentrain bench train configs/vae-fashion-mnist.yaml data.path=$data train.cuda_graph=off --steps $((steps * 4)) --warmup 200)"
say "GPU busy share, PyTorch VAE fp32: $(util peer python3 launch/bench/vae_pytorch.py --device cuda --h5 $data --steps $((steps * 4)) --warmup 200)"
echo "== summary ($summary)"
cat "$summary"
