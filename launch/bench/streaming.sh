#!/bin/bash
# Datasets larger than memory (issue 21): a synthetic file (`gentrain data synth`) at least 3x a
# memory limit imposed on the readers (a cgroup v1/v2 memory limit where this machine has one,
# as root; else only data.cache_mb and a dropped page cache), read cold:
#  - dd: a sequential read of the file (the disk's speed);
#  - the block order's streaming loader (data.shuffle=blocks, Note [lanes of blocks]) on 1 and 2
#    ranks, a whole epoch, as a share of dd's rate; each rank's peak memory against the limit;
#  - today's path (data.shuffle=global: one image at a time through HDF5's chunk cache), the
#    same way, for comparison (a part of an epoch: it is slow);
#  - the shuffle quality of the block order on a file stored sorted by label;
#  - a Progressive GAN at 64x64 on the file: the share of its step spent waiting for data.
# The machine's disk may be far faster than the one a cluster node reads from (a VM's virtual disk
# is cached by its host: dd reads it cold at GB/s, and 2 cores cannot convert images that fast),
# so each figure is taken twice: on the disk as it is, and with reads throttled to DISK_MBS
# (default 400 MB/s, a cgroup v1 blkio limit on the file's device), dd included.
# Env: LIMIT_MB (768), IMAGES (the file size follows; default: 3.2x the limit of 64x64 RGB),
# COMPRESS=1 for deflated chunks (inflating on one core is then the bound), KEEP=dir to keep the
# file between runs. Needs a build (launch/setup.sh); root for the page cache and the cgroup.
set -euo pipefail
cd "$(dirname "$0")/../.."
# /usr/bin/time (peak memory) is not on a minimal Debian; installed when missing.
if [ ! -x /usr/bin/time ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y -qq --no-install-recommends time >/dev/null
fi
root=$PWD
g=$root/build/gentrain
limit_mb=${LIMIT_MB:-768}
image_bytes=$((3 * 64 * 64))
images=${IMAGES:-$((limit_mb * 1048576 * 32 / 10 / image_bytes))}
work=${KEEP:-$(mktemp -d /tmp/gentrain-streaming-XXXX)}
mkdir -p "$work"
cleanup() {
  [ -n "${KEEP:-}" ] || rm -rf "$work"
  [ -z "${cg:-}" ] || rmdir "$cg" 2>/dev/null || true
  [ -z "${io:-}" ] || rmdir "$io" 2>/dev/null || true
}
trap cleanup EXIT
flags=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

file=$work/synth-${images}${COMPRESS:+-deflated}.h5
if [ ! -s "$file" ]; then
  "$g" data synth --out "$file" --images "$images" --size 64 --test-images 1000 \
    $([ -n "${COMPRESS:-}" ] || echo --no-compress) --force
fi
file_mb=$(( $(stat -c %s "$file") / 1048576 ))
echo "file: $file, $file_mb MB ($images images of 3x64x64), memory limit $limit_mb MB"

# The limit: a cgroup of our own (v1 memory controller, or v2), commands run inside it.
cg=""
if [ "$(id -u)" -eq 0 ] && [ -d /sys/fs/cgroup/memory ]; then
  cg=/sys/fs/cgroup/memory/gentrain-streaming-$$
  mkdir "$cg" && echo $((limit_mb * 1048576)) > "$cg/memory.limit_in_bytes"
elif [ "$(id -u)" -eq 0 ] && grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
  cg=/sys/fs/cgroup/gentrain-streaming-$$
  mkdir "$cg" && echo $((limit_mb * 1048576)) > "$cg/memory.max"
fi
io=""
disk=$(findmnt -n -o SOURCE --target "$file" 2>/dev/null || true)
if [ -n "$cg" ] && [ -d /sys/fs/cgroup/blkio ] && [ -b "$disk" ]; then
  io=/sys/fs/cgroup/blkio/gentrain-streaming-$$
  mkdir -p "$io"
  whole=/sys/class/block/$(basename "$disk")
  [ -e "$whole/partition" ] && whole=$(dirname "$(readlink -f "$whole")")
  device=$(cat "$whole/dev")
fi
throttle=0  # MB/s of reads in the blkio cgroup; 0: none
limited() {
  if [ -n "$cg" ]; then
    sh -c 'echo $$ > "$0/cgroup.procs"; [ -z "$1" ] || echo $$ > "$1/cgroup.procs"; shift; exec "$@"' \
      "$cg" "$io" "$@"
  else "$@"; fi
}
set_throttle() {
  throttle=$1
  [ -n "$io" ] && echo "$device $((throttle * 1000000))" > "$io/blkio.throttle.read_bps_device"
}
cold() { sync; if [ "$(id -u)" -eq 0 ]; then echo 3 > /proc/sys/vm/drop_caches; fi; }
[ -n "$cg" ] && echo "limit: cgroup $cg" || echo "limit: none (not root or no memory cgroup): data.cache_mb only"

spec=configs/vae-fashion-mnist.yaml
loader() {  # ranks batches overrides...: prints "MB/s peakRSS_MB" of a cold loader run
  local ranks=$1 batches=$2
  shift 2
  cold
  local out
  out=$(limited mpirun "${flags[@]}" -np "$ranks" /usr/bin/time -f "peak-rss %M" "$g" bench loader \
    "$spec" data.path="$file" data.cache_mb=64 runtime.threads=1 "$@" --batches "$batches" \
    --warmup 0 2>&1 || true)
  local mbs rss
  mbs=$(grep -oE "stored_mb_per_s=[0-9.]+" <<<"$out" | cut -d= -f2 || true)
  rss=$(grep -oE "peak-rss [0-9]+" <<<"$out" | awk '{ if ($2 > m) m = $2 } END { print int(m / 1024) }')
  if [ -z "$mbs" ]; then
    grep -q "Exit code: *137" <<<"$out" && echo "killed $rss" && return
    echo "loader run failed: $out" >&2
    echo "failed 0"
    return
  fi
  echo "$mbs $rss"
}
# report KIND RANKS MBS RSS WHAT: one figure line and its RESULT line.
report() {
  local kind=$1 ranks=$2 mbs=$3 rss=$4 what=$5
  if [ "$mbs" = killed ] || [ "$mbs" = failed ]; then
    echo "$what, $ranks rank(s): $mbs (the memory limit's OOM killer; peak RSS seen $rss MB)"
    echo "RESULT $kind disk_mbs=$disk_mbs ranks=$ranks $mbs=1"
    return
  fi
  local ratio
  ratio=$(python3 -c "print(f'{$mbs / $dd_mbs:.3f}')")
  echo "$what, $ranks rank(s): $mbs MB/s of images = $ratio of dd; peak RSS per rank $rss MB (limit $limit_mb MB for the job)"
  echo "RESULT $kind disk_mbs=$disk_mbs ranks=$ranks mb_per_s=$mbs dd_ratio=$ratio peak_rss_mb=$rss"
}
for disk_mbs in 0 ${DISK_MBS:-400}; do
  if [ "$disk_mbs" -gt 0 ]; then
    [ -n "$io" ] || { echo "no blkio cgroup here: the throttled disk is skipped"; break; }
    set_throttle "$disk_mbs"
    echo "== reads throttled to $disk_mbs MB/s"
  else
    echo "== the disk as it is"
  fi
  cold
  dd_mbs=$(limited dd if="$file" of=/dev/null bs=4M 2>&1 | grep -oE "[0-9.]+ [MG]B/s" |
    awk '{print ($2 == "GB/s") ? $1 * 1000 : $1}')
  echo "dd (sequential, cold): $dd_mbs MB/s"
  for ranks in 1 2; do
    read -r mbs rss < <(loader "$ranks" 0 data.shuffle=blocks data.readahead_mb=128)
    report streaming "$ranks" "$mbs" "$rss" "block order, one epoch cold"
  done
  for ranks in 1 2; do
    read -r mbs rss < <(loader "$ranks" 100 data.shuffle=global)
    report global "$ranks" "$mbs" "$rss" "global order (today's path), 100 batches cold"
  done
done
[ -z "$io" ] || set_throttle 0

# Shuffle quality on a file stored sorted by label (a Fashion-MNIST-sized one).
"$g" data synth --out "$work/sorted.h5" --images 60000 --size 28 --channels 1 --sorted-by-label \
  --force >/dev/null
"$g" bench shuffle "$work/sorted.h5" --batch 128 --epochs 3 | grep -v "index sequence\|identical"
"$g" bench shuffle "$work/sorted.h5" --batch 96 --epochs 1 | grep "index sequence\|identical"

# A Progressive GAN at 64x64 on the file: its data wait as a share of the step.
cold
out=$(limited "$g" bench train configs/pgan-fashion-mnist-color32.yaml data.path="$file" \
  data.cache_mb=64 data.shuffle=blocks data.readahead_mb=128 model.start_resolution=64 "model.batch=[]" \
  train.global_batch=16 runtime.threads=2 --steps 8 --warmup 2 2>&1)
grep -E "bench train" <<<"$out" || { echo "pgan run failed: $out"; exit 1; }
