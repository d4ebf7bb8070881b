#!/bin/bash
# Import throughput for a folder of 64x64 PNGs (generated here, noise patterns so they do not
# compress to nothing): prints images/s and the importer's peak memory. N=2000 by default.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${N:-2000}
work=$(mktemp -d /tmp/gentrain-import-XXXX)
trap 'rm -rf "$work"' EXIT
python3 - "$work/png" "$n" <<'PY'
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
start=$(date +%s.%N)
if [ -x /usr/bin/time ]; then
  /usr/bin/time -f "peak memory %M KB" build/gentrain data import-folder --dir "$work/png" \
    --out "$work/out.h5" --size 64 --labels-from-folders
else
  build/gentrain data import-folder --dir "$work/png" --out "$work/out.h5" --size 64 --labels-from-folders
fi
end=$(date +%s.%N)
python3 -c "print(f'import-folder: $n PNGs of 64x64 in {$end - $start:.2f} s = {$n / ($end - $start):.0f} images/s')"
