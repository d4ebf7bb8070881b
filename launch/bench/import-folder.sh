#!/bin/bash
# Import throughput for a folder of 64x64 PNGs (generated here, noise patterns so they do not
# compress to nothing): images/s on 1 core and on 2 (taskset; decode and deflate use the cores
# they are given, Note [chunks deflated in parallel]), and the importer's peak memory for N and
# 4N images (it streams: memory should not grow with the count). N=2000 by default.
set -euo pipefail
cd "$(dirname "$0")/../.."
# /usr/bin/time (peak memory) is not on a minimal Debian; installed when missing.
if [ ! -x /usr/bin/time ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y -qq --no-install-recommends time >/dev/null
fi
n=${N:-2000}
work=$(mktemp -d /tmp/gentrain-import-XXXX)
trap 'rm -rf "$work"' EXIT
make_pngs() {  # dir count
python3 - "$1" "$2" <<'PY'
import os, random, struct, sys, zlib
out, n = sys.argv[1], int(sys.argv[2])
random.seed(0)
def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
for k in range(n):
    folder = os.path.join(out, f"class{k % 10}")
    os.makedirs(folder, exist_ok=True)
    rows = b"".join(b"\0" + bytes(random.getrandbits(8) & 0xF0 for _ in range(64 * 3)) for _ in range(64))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    with open(os.path.join(folder, f"{k:06d}.png"), "wb") as f:
        f.write(png)
PY
}
make_pngs "$work/png" "$n"
make_pngs "$work/png4" $((4 * n))
run() {  # cores dir count: prints "images/s wall-images/s peakKB"
  local cores=$1 dir=$2 count=$3 start end out
  start=$(date +%s.%N)
  out=$(OMP_NUM_THREADS=$(awk -F, '{print NF}' <<<"$cores") taskset -c "$cores" /usr/bin/time -f "peak %M" \
    build/gentrain data import-folder --dir "$dir" --out "$work/out.h5" --size 64 \
    --labels-from-folders --force 2>&1)
  end=$(date +%s.%N)
  # The importer's own figure ("in 2.01 s, 3980 images/s"), and the wall clock of the whole
  # process, whose start (~0.5 s loading LibTorch) is the same on any number of cores.
  echo "$(grep -oE '[0-9]+ images/s' <<<"$out" | cut -d' ' -f1)" \
    "$(python3 -c "print(f'{$count / ($end - $start):.0f}')")" \
    "$(grep -oE "peak [0-9]+" <<<"$out" | cut -d' ' -f2)"
}
best() {  # cores dir count: the best of 3 runs
  local a b c
  a=$(run "$@"); b=$(run "$@"); c=$(run "$@")
  printf '%s\n%s\n%s\n' "$a" "$b" "$c" | sort -n -r | head -1
}
read -r one wall1 peak1 < <(best 0 "$work/png" "$n")
read -r two wall2 peak2 < <(best 0,1 "$work/png" "$n")
read -r one4 wall14 peak14 < <(best 0 "$work/png4" $((4 * n)))
read -r two4 wall4 peak4 < <(best 0,1 "$work/png4" $((4 * n)))
ratio() { python3 -c "print(f'{$2 / $1:.2f}')"; }
echo "import-folder, 64x64 PNGs, best of 3 (images/s as the importer reports it; wall clock of"
echo "the whole process, start included, in brackets):"
echo "  $n images: 1 core $one ($wall1), 2 cores $two ($wall2): $(ratio "$one" "$two")x ($(ratio "$wall1" "$wall2")x)"
echo "  $((4 * n)) images: 1 core $one4 ($wall14), 2 cores $two4 ($wall4): $(ratio "$one4" "$two4")x ($(ratio "$wall14" "$wall4")x)"
echo "peak memory (2 cores): $((peak2 / 1024)) MB for $n images, $((peak4 / 1024)) MB for $((4 * n))"
echo "RESULT import_4n_1core=$one4 import_4n_2cores=$two4 speedup=$(ratio "$one4" "$two4") wall_speedup=$(ratio "$wall14" "$wall4") peak_mb_n=$((peak2 / 1024)) peak_mb_4n=$((peak4 / 1024))"
