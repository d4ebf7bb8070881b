#!/bin/bash
# Side by side, on this machine and the same LibTorch: gentrain vs PyTorch eager for the default
# VAE (784-400-20, Adam 1e-3, global batch 128), then the conv VAE, one rank x one thread, both
# under the same allocator settings (Note [fair peer] in side-by-side.sh), in interleaved rounds
# (best and median); gentrain's non-finite check's share of its step; then gentrain on 2 ranks
# vs 1 rank, at the same global batch and at the same per-rank batch, and the most 2 ranks could
# reach on this machine (two independent runs at once, one per core). Needs a build
# (launch/setup.sh); installs python3-torch if missing. STEPS=N per run, ROUNDS=R; PARTS picks
# what to run, of "vae conv ranks" (all by default: the VAE and the conv VAE against the peer,
# and the 2-rank figures).
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${STEPS:-400}
rounds=${ROUNDS:-5}
parts=" ${PARTS:-vae conv ranks} "
wants() { [[ "$parts" == *" $1 "* ]]; }
source launch/bench/peer-setup.sh
flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
source launch/bench/side-by-side.sh
allocator_line
log=$(mktemp)
trap 'rm -f "$log"' EXIT
ours_on() {  # ranks [overrides...]: gentrain under mpirun
  local ranks=$1
  shift
  mpirun "${flags[@]}" -np "$ranks" build/gentrain bench train configs/vae-fashion-mnist.yaml \
    runtime.threads=1 "$@" --steps "$steps" --warmup 30 2>&1 | tee -a "$log" | rate
}
if wants vae; then
run_ours() {  # one rank, started directly (as the peer is)
  build/gentrain bench train configs/vae-fashion-mnist.yaml runtime.threads=1 --steps "$steps" \
    --warmup 30 2>&1 | tee -a "$log" | rate
}
run_peer() {
  /usr/bin/python3 launch/bench/vae_pytorch.py --threads 1 --batch 128 --steps "$steps" \
    --warmup 30 2>&1 | rate
}
interleave "$rounds"
report "vae 1x1" "${ours[*]}" "${peer[*]}"
python3 - "$log" <<'PY'
import re, statistics, sys
shares = [float(m) for m in re.findall(r"nonfinite_check_share=([0-9.]+)", open(sys.argv[1]).read())]
print(f"non-finite check: {100 * statistics.median(shares):.1f}% of gentrain's step (median of "
      f"{len(shares)} runs, {100 * min(shares):.1f}% to {100 * max(shares):.1f}%)")
PY
fi
if wants conv; then
# The conv VAE (configs/vae-conv-fashion-mnist.yaml; the peer's --arch conv) the same way.
run_ours() {
  build/gentrain bench train configs/vae-conv-fashion-mnist.yaml runtime.threads=1 \
    --steps "$steps" --warmup 30 2>&1 | rate
}
run_peer() {
  /usr/bin/python3 launch/bench/vae_pytorch.py --arch conv --threads 1 --batch 128 \
    --steps "$steps" --warmup 30 "$@" 2>&1 | rate
}
peer_layouts=both  # Note [peer layouts]
interleave "$rounds"
report "conv vae 1x1" "${ours[*]}" "${peer[*]}"
fi
wants ranks || exit 0
# What two ranks could reach here at most: two independent 1-rank runs at once, one pinned to
# each core. Ranks that average gradients every step all go at the pace of the slower one.
apart() {
  local out=() core
  for core in 0 1; do
    taskset -c "$core" build/gentrain bench train configs/vae-fashion-mnist.yaml \
      runtime.threads=1 --steps "$steps" --warmup 30 >"$log.core$core" 2>&1 &
  done
  wait
  for core in 0 1; do out+=("$(rate <"$log.core$core")"); done
  rm -f "$log".core*
  echo "${out[*]}"
}
one=(); two=(); twoWide=(); slowerApart=()
for round in $(seq 1 "$rounds"); do
  one+=("$(ours_on 1)")
  two+=("$(ours_on 2)")
  twoWide+=("$(ours_on 2 train.global_batch=256)")
  # (nproc alone would answer OMP_NUM_THREADS, which the benchmarks set to 1)
  if command -v taskset >/dev/null && [ "$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)" -ge 2 ]; then
    slowerApart+=("$(apart | python3 -c 'import sys; print(min(map(float, sys.stdin.read().split())))')")
  fi
done
python3 - "${one[*]}" "${two[*]}" "${twoWide[*]}" "${slowerApart[*]}" <<'PY'
import statistics, sys
one, two, wide, apart = ([float(v) for v in a.split()] for a in sys.argv[1:5])
def ratios(xs):
    r = sorted(x / o for x, o in zip(xs, one))
    return f"{max(xs) / max(one):.2f}x one rank (best of {len(xs)}), {statistics.median(r):.2f} median"
print(f"mpirun, 1 rank: {max(one):.0f} images/s")
print(f"2 ranks x 1 thread, global batch 128 (64 per rank): {max(two):.0f} images/s = {ratios(two)}")
print(f"2 ranks x 1 thread, global batch 256 (128 per rank): {max(wide):.0f} images/s = {ratios(wide)}")
if apart:
    ceiling = sorted(2 * a / o for a, o in zip(apart, one))
    print(f"the most 2 ranks could reach here: two independent 1-rank runs at once, one per core, "
          f"the slower at {max(apart):.0f} images/s (best): 2 x the slower = "
          f"{2 * max(apart) / max(one):.2f}x one rank, {statistics.median(ceiling):.2f} median")
PY
