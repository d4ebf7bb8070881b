#!/bin/bash
# Builds the libFuzzer targets with clang (build-fuzz/) and fuzzes each for SECONDS (default 60),
# starting from small valid seeds made here. Prints, per target, the executions run and the
# crashes found; exits 1 when any target crashed (its reproducer is kept in build-fuzz/crashes/).
# Exits 77 (CTest: skipped) when clang or libFuzzer is not installed.
#   bash tests/fuzz/run.sh 600      # the longer run
# Needs: clang libclang-rt-14-dev (Debian), and what the normal build needs.
set -uo pipefail
seconds=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${FUZZ_BUILD:-$root/build-fuzz}
if ! command -v clang++ >/dev/null || ! echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, long) { return 0; }' |
     clang++ -x c++ -fsanitize=fuzzer - -o /dev/null 2>/dev/null; then
  echo "SKIPPED: no clang with libFuzzer here (apt-get install clang libclang-rt-14-dev)"
  exit 77
fi
mkdir -p "$out"
if [ ! -f "$out/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$out" -G Ninja -DGENTRAIN_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$out/configure.log" 2>&1 ||
    { tail -20 "$out/configure.log"; exit 1; }
fi
cmake --build "$out" -j 2 >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }

# Seeds: one or two valid inputs per target, so that the fuzzer starts past the first checks.
seeds=$out/seeds
rm -rf "$seeds" "$out/crashes" && mkdir -p "$seeds"/{spec,idx,cifar,checkpoint,hdf5} "$out/crashes"
cp "$root"/configs/*.yaml "$seeds/spec/"
printf '#o train.epochs=3;model.hidden=[4, 2]\nname: x\ndata: {path: d.h5}\nsweep: {optim.net.lr: [0.1, 0.2], model.kind: [a, b]}\n' \
  > "$seeds/spec/sweep.yaml"
cp /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz "$seeds/idx/" 2>/dev/null
python3 - "$seeds" <<'PY'
import struct, sys, zlib
seeds = sys.argv[1]
with open(f"{seeds}/idx/images", "wb") as f:          # 2 images of 4x4
    f.write(struct.pack(">IIII", 0x803, 2, 4, 4) + bytes(range(32)))
with open(f"{seeds}/cifar/ten", "wb") as f:           # CIFAR-10: label, 3072 pixels
    f.write(b"\x00" + (b"\x03" + bytes(3072)) * 2)
with open(f"{seeds}/cifar/hundred", "wb") as f:       # CIFAR-100: coarse, fine, 3072 pixels
    f.write(b"\x01" + (b"\x02\x07" + bytes(3072)) * 2)
# Hdf5Fuzz's declarations (see Input there): flags (labels 4, attributes 16, cached 64), then
# each size as (kind, small) or, for kind >= 200, (kind, _, base): (base + 1) << (kind % 56).
with open(f"{seeds}/hdf5/small", "wb") as f:          # 2 images of 1x2x2, labels, attributes
    f.write(bytes([4 | 16 | 64]) + bytes([0, 2, 0, 1, 0, 2, 0, 2]) + bytes([1]) + bytes(range(8))
            + bytes([1]) + bytes(2 * 8) + bytes([0, 2, 1]) + bytes(4) + bytes([1, 2, 3]) + b"abcdef")
with open(f"{seeds}/hdf5/declares-much", "wb") as f:  # 2^40 images, nothing written
    f.write(bytes([0]) + bytes([208, 0, 0, 0, 1, 0, 2, 0, 2]))
payload = b"a small payload"
with open(f"{seeds}/checkpoint/state.bin", "wb") as f:
    f.write(b"GTCKPT\r\n" + struct.pack("<IQIQ", 1, 42, 2, len(payload)) + payload
            + struct.pack("<I", zlib.crc32(payload)))
PY

status=0
printf '%-12s %12s %8s %s\n' target executions crashes corpus
for target in spec idx cifar checkpoint hdf5; do
  corpus=$out/corpus/$target
  mkdir -p "$corpus"
  log=$out/$target.log
  (cd "$out/crashes" && "$out/tests/fuzz/fuzz_$target" -max_total_time="$seconds" -max_len=16384 \
     -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 "$corpus" "$seeds/$target" >"$log" 2>&1)
  rc=$?
  runs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$")
  crashes=$(ls "$out/crashes" | grep -cE "^(crash|leak|timeout|oom)-" )
  [ "$rc" -eq 0 ] || status=1
  printf '%-12s %12s %8s %s\n' "$target" "${runs:-?}" "$([ $rc -eq 0 ] && echo 0 || echo "yes")" \
    "$(ls "$corpus" | wc -l) inputs"
  if [ "$rc" -ne 0 ]; then
    grep -E "ERROR|SUMMARY|==[0-9]+==|#[0-9]+ 0x" "$log" | head -15
    echo "reproducer(s) in $out/crashes ($crashes in all): $out/tests/fuzz/fuzz_$target FILE"
  fi
done
exit $status
