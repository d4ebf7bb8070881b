# Sourced by the side-by-side benchmarks (launch/bench/*-vs-pytorch.sh): reading a run's
# figure, the report of interleaved rounds, and the GANs' data. This VM's speed drifts by 10-20%
# from minute to minute, so the rounds alternate which side runs first, and the report gives both
# the ratio of each side's best and the median of the rounds' own ratios (a round's two runs are
# a minute apart at most, so a slow minute slows both).

# Note [fair peer]
# gentrain keeps freed blocks in the heap (keepFreedMemory() in framework/runtime/Runtime.cpp:
# glibc's mmap threshold 256 MiB, trim threshold 512 MiB), so it does not pay page faults and
# zeroing for the activations it frees and takes again every step. Python's PyTorch, with
# glibc's defaults, would; a user who tunes PyTorch sets the same two knobs through glibc's
# environment variables, and so do these benchmarks, for both sides (gentrain sets them again
# itself). Without them the default VAE peer ran at about 40% of its speed (issue 22).
export MALLOC_MMAP_THRESHOLD_=$((256 << 20)) MALLOC_TRIM_THRESHOLD_=$((512 << 20))
# The BLAS kernels too: where OpenBLAS takes the CPU for a generic one (its Prescott kernels,
# ~3x slower GEMMs), gentrain starts itself again with OPENBLAS_CORETYPE naming the kernels the
# CPU runs (Note [OpenBLAS on CPUs it does not know] in framework/runtime/BlasKernels.cpp); a
# PyTorch user who looked would set the same variable, so both sides get it here.
blas_note="OpenBLAS chose its kernels itself"
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  blas_core=$(OPENBLAS_VERBOSE=2 /usr/bin/python3 -c 'import numpy' 2>&1 | sed -n 's/^Core: //p' || true)
  if [ "$blas_core" = Prescott ]; then
    if grep -qw avx512bw /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
    elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
    [ -z "${OPENBLAS_CORETYPE:-}" ] ||
      blas_note="OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE on both sides (OpenBLAS took this CPU for Prescott)"
  fi
else
  blas_note="OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE (yours) on both sides"
fi
allocator_line() {
  echo "allocator: glibc malloc on both sides, MALLOC_MMAP_THRESHOLD_=$MALLOC_MMAP_THRESHOLD_" \
    "MALLOC_TRIM_THRESHOLD_=$MALLOC_TRIM_THRESHOLD_ (the settings gentrain applies to itself);" \
    "BLAS: $blas_note"
}

# The images/s a run printed (its RESULT line); fails, showing the run's end, when there is none.
rate() {
  local out
  out=$(cat)
  if ! grep -q 'RESULT images_per_s=' <<<"$out"; then
    echo "a benchmark run printed no RESULT line; its last lines:" >&2
    tail -5 <<<"$out" >&2
    return 1
  fi
  grep -o 'RESULT images_per_s=[0-9.]*' <<<"$out" | tail -1 | cut -d= -f2
}

best() { python3 -c "import sys; print(max(map(float, sys.argv[1:])))" "$@"; }

# Note [peer layouts]
# A PyTorch user who tunes a convolutional network tries channels-last too. Where a script sets
# peer_layouts=both (its peer takes --channels-last), each round runs the peer in both memory
# formats and keeps the faster run, and the report says how often each format won. On this VM
# (2026-12-06) eager PyTorch was faster channels-last for the Progressive GAN in every round,
# mostly NCHW for PixelCNN, StarGAN and the conv VAE, either way for the Row LSTM.
# Keeping the faster of two runs is also a second draw of the machine's noise, which on a VM that
# drifts 10-20% between runs is worth several percent by itself; so gentrain runs as many times
# in such a round and keeps its faster run too, and both sides' round figures are best-of-two.
# (Until 2026-12-06 late gentrain ran once a round against the peer's best of two.)
peer_layouts=contiguous
layout_log=${TMPDIR:-/tmp}/gentrain-peer-layouts.$$  # made by interleave, removed by report
run_peer_tuned() {
  local plain last
  plain=$(run_peer)
  if [ "$peer_layouts" != both ]; then
    echo "$plain"
    return
  fi
  last=$(run_peer --channels-last)
  python3 - "$plain" "$last" "$layout_log" <<'PY'
import sys
plain, last, log = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
with open(log, "a") as f:
    f.write("channels-last\n" if last > plain else "contiguous\n")
print(max(plain, last))
PY
}

# As many runs of gentrain in a round as the peer has (Note [peer layouts]), the faster kept.
run_ours_matched() {
  local first
  first=$(run_ours)
  if [ "$peer_layouts" != both ]; then
    echo "$first"
    return
  fi
  best "$first" "$(run_ours)"
}

# interleave ROUNDS: calls the caller's run_ours and run_peer (each prints a rate) ROUNDS times,
# alternating which goes first; the rates land in the arrays `ours` and `peer`, in round order.
interleave() {
  ours=()
  peer=()
  : >"$layout_log"
  local round
  for round in $(seq 1 "$1"); do
    if [ $((round % 2)) = 1 ]; then
      ours+=("$(run_ours_matched)")
      peer+=("$(run_peer_tuned)")
    else
      peer+=("$(run_peer_tuned)")
      ours+=("$(run_ours_matched)")
    fi
  done
}

# report LABEL "OURS1 OURS2 ..." "PEER1 PEER2 ...": rates of the same rounds, in order.
report() {
  python3 - "$@" <<'PY'
import statistics, sys
label, ours, peer = sys.argv[1], *([float(v) for v in a.split()] for a in sys.argv[2:4])
rounds = sorted(o / p for o, p in zip(ours, peer))
print(f"{label:16s} gentrain {max(ours):7.1f} images/s, PyTorch eager {max(peer):7.1f} images/s: "
      f"ratio {max(ours) / max(peer):.2f} (best of {len(ours)} each); round by round "
      f"{statistics.median(rounds):.2f} median, {rounds[0]:.2f} to {rounds[-1]:.2f}")
PY
  if [ -s "$layout_log" ]; then
    echo "  the peer's faster memory format, round by round: $(sort "$layout_log" | uniq -c |
      awk '{printf "%s%s in %d", (NR > 1 ? ", " : ""), $2, $1}') of $(wc -l <"$layout_log")"
  fi
  rm -f "$layout_log"
}

# Coloured Fashion-MNIST at 32x32, which the GAN configs train on, made with the data tool
# (GENTRAIN: its binary) when missing.
color_data() {
  [ -f datasets/fashion-mnist-color32.h5 ] && return
  [ -f datasets/fashion-mnist.h5 ] || "$GENTRAIN" data import-idx \
    --dir /usr/share/datasets/fashion-mnist --out datasets/fashion-mnist.h5 >/dev/null
  "$GENTRAIN" data colorize datasets/fashion-mnist.h5 datasets/fashion-mnist-color32.h5 \
    --seed 1 --size 32 >/dev/null
}

# The GAN benchmarks' settings, from the environment: device (DEVICE, cpu), gentrain (GENTRAIN,
# build/gentrain) and python (PYTHON: Debian's PyTorch on this machine, the LibTorch gentrain
# links; the installed one elsewhere). On the CPU the peer is installed when missing; one thread
# each side; the GANs' data made when missing.
gan_setup() {
  device=${DEVICE:-cpu}
  gentrain=${GENTRAIN:-build/gentrain}
  export GENTRAIN=$gentrain
  if [ "$device" = cpu ]; then
    source launch/bench/peer-setup.sh
    python=${PYTHON:-/usr/bin/python3}
  else
    python=${PYTHON:-python3}
  fi
  export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
  color_data
}
