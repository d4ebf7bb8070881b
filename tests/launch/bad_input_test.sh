#!/bin/bash
# Bad input, case by case: each must fail with exit 1 and a one-line message naming the file,
# key or value and what to do, and must leave every file and folder here exactly as it was
# (content, names; nothing created, nothing removed). Usage: bad_input_test.sh GENTRAIN "MPIEXEC FLAGS"
gentrain=$1
mpiexec=$2
TEST_NAME=bad-input source "$(dirname "$0")/test_lib.sh"

# state: every path here with a digest of every file's bytes.
state() { find . -print | LC_ALL=C sort; find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum; }
# refused NAME PATTERN -- COMMAND...: exit 1, the message matches, one "error:" line, disk unchanged.
refused() {
  local name=$1 pattern=$2 before after out rc
  shift 3
  before=$(state)
  out=$("$@" 2>&1)
  rc=$?
  after=$(state)
  if [ "$rc" -ne 1 ] || ! grep -qE -- "$pattern" <<<"$out"; then
    fail "$name: exit $rc (want 1), output:"; echo "$out" | tail -8
  elif [ "$before" != "$after" ]; then
    fail "$name: refused, but the files here changed:"; diff <(echo "$before") <(echo "$after") | head -8
  else
    pass "$name: $(grep -m1 "error" <<<"$out" | sed 's/^\[rank [0-9/]*\] //' | cut -c1-150)"
  fi
}

make_idx 1 64 16 "0 40 200 255"
"$gentrain" data import-idx --dir . --out data.h5 --binarize threshold:128 >/dev/null 2>&1 ||
  { echo "FAIL import"; exit 1; }
tiny_vae_spec bad \
  'train: {global_batch: 8, epochs: 1}' \
  'eval: {batch: 4}' > spec.yaml

# The spec.
printf 'name: bad\ntrain: {epochs: 2\n' > malformed.yaml
refused malformed-yaml "malformed.yaml:3:1: malformed YAML" -- "$gentrain" train malformed.yaml
refused unknown-key "unknown key 'train.epoch'; did you mean 'train.epochs'" -- \
  "$gentrain" train spec.yaml train.epoch=2
refused wrong-type "train.epochs must be an integer, got 'two'" -- "$gentrain" train spec.yaml train.epochs=two
refused out-of-range "train.global_batch is 0; it must be between 1 and 2147483647" -- \
  "$gentrain" train spec.yaml train.global_batch=0
refused missing-spec "nowhere.yaml: cannot read the spec file" -- "$gentrain" train nowhere.yaml
refused bad-sweep "in sweep: unknown key 'optim.vae.lrr'" -- \
  "$gentrain" submit <(cat spec.yaml; echo "sweep: {optim.vae.lrr: [1]}") --dry-run
printf 'name: bad\ntrain: {epochs: 2}\ntrain: {steps: 3}\n' > twice.yaml
refused duplicate-key "twice.yaml:3:1: key 'train' appears a second time \(first at line 2\)" -- \
  "$gentrain" train twice.yaml
refused epochs-too-large "train.epochs is 99999999999; it must be between 0 and 2147483647" -- \
  "$gentrain" train spec.yaml train.epochs=99999999999
printf 'name: "x\\ntouch pwned #"\n' | cat - spec.yaml | sed '2d' > newline-name.yaml
refused name-with-newline "name 'x\\\\ntouch pwned #' cannot name a run directory" -- \
  "$gentrain" submit newline-name.yaml --dry-run
refused name-with-path "name '../../etc/x' cannot name a run directory" -- \
  "$gentrain" train spec.yaml name=../../etc/x
refused run-dir-with-newline "has a line break, which a batch script cannot hold" -- \
  "$gentrain" submit spec.yaml "run.dir=runs/a
b" --dry-run

# The data.
refused missing-data "nothere.h5: not an HDF5 file, or it does not exist" -- \
  "$gentrain" train spec.yaml data.path=nothere.h5
echo "not HDF5 at all" > text.h5
refused not-hdf5 "text.h5: not an HDF5 file" -- "$gentrain" train spec.yaml data.path=text.h5
# An HDF5 file that is not an image dataset: a weights export has no train/test splits.
"$gentrain" train spec.yaml name=source >/dev/null 2>&1 && "$gentrain" export runs/source -o weights.h5 >/dev/null 2>&1
refused hdf5-without-images "weights.h5.*(split|train)" -- "$gentrain" train spec.yaml data.path=weights.h5
make_idx 2 64 0 "0 255"
"$gentrain" data import-idx --dir . --out empty-test.h5 >/dev/null 2>&1
refused empty-split "empty-test.h5.*(empty|no images|0 images)" -- \
  "$gentrain" train spec.yaml data.path=empty-test.h5
refused wrong-image-size "stride-2 layers need image sides divisible by 8, but the data is 4x4" -- \
  "$gentrain" train spec.yaml model.arch=conv model.conv_channels=[4,4,4]
refused resolution-too-large "data.resolution = 8 does not divide the stored 4x4 images" -- \
  "$gentrain" train spec.yaml data.resolution=8
refused batch-not-divisible "global_batch = 9 does not divide by the 2 ranks" -- \
  $mpiexec -np 2 "$gentrain" train spec.yaml train.global_batch=9

# The GANs' specs against their data (4x4 images coloured by the data tool; 6x6 when padded).
configs=$(cd "$(dirname "$0")/../../configs" && pwd)
"$gentrain" data colorize data.h5 color.h5 --seed 1 >/dev/null 2>&1 &&
  "$gentrain" data colorize data.h5 color6.h5 --seed 1 --size 6 >/dev/null 2>&1 ||
  { echo "FAIL colorize"; exit 1; }
refused stargan-unknown-domains "model.domains.*has no attribute fg_pink, fg_teal; it has: fg_red, fg_green" -- \
  "$gentrain" train "$configs/stargan-smoke.yaml" data.path=color.h5 data.resolution=0 \
  "model.domains=[fg_red, fg_pink, fg_teal]"
refused stargan-no-attributes "data.h5 has no attributes" -- \
  "$gentrain" train "$configs/stargan-smoke.yaml" data.path=data.h5 data.resolution=0
refused stargan-no-classifier "nowhere" -- \
  "$gentrain" train "$configs/stargan-smoke.yaml" data.path=color.h5 data.resolution=0 \
  model.classifier=runs/nowhere
# Categorical domains that leave images without one: refused before the run directory is made
# (model.domain_filter=true would keep just the images with exactly one).
refused stargan-domains-miss-images "model.domains.*of the [0-9]+ images of color.h5:/train have none or several of these categorical domains set.*set model.domain_filter=true to use the" -- \
  "$gentrain" train "$configs/stargan-smoke.yaml" data.path=color.h5 data.resolution=0 \
  "model.domains=[fg_red, fg_green]"
refused pgan-not-power-of-two "power-of-two side of at least 4, but the data is 6x6" -- \
  "$gentrain" train "$configs/pgan-smoke.yaml" data.path=color6.h5 data.resolution=0

# Importers.
mkdir -p idx-bad && head -c 300 train-images-idx3-ubyte > idx-bad/train-images-idx3-ubyte
cp train-labels-idx1-ubyte t10k-* idx-bad/
refused truncated-idx "idx-bad/train-images-idx3-ubyte: truncated" -- \
  "$gentrain" data import-idx --dir idx-bad --out out.h5
mkdir -p cifar-bad && head -c 5000 /dev/urandom > cifar-bad/data_batch_1.bin
refused truncated-cifar "data_batch_1.bin: 5000 bytes is not a whole number" -- \
  "$gentrain" data import-cifar --dir cifar-bad --out out.h5
mkdir -p png-bad
"$gentrain" data grid data.h5 png-bad/good.png --count 4 >/dev/null 2>&1
head -c 60 png-bad/good.png > png-bad/cut.png
refused truncated-png "png-bad/cut.png.*pass --skip-bad" -- \
  "$gentrain" data import-folder --dir png-bad --out out.h5 --size 4
# A decompression bomb: a PNG of a few dozen bytes whose header claims 30000x30000 pixels.
mkdir -p bomb
python3 - <<'PY'
import struct, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
with open("bomb/bomb.png", "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0\0"))
            + chunk(b"IEND", b""))
PY
refused decompression-bomb "bomb.png: 30000x30000 pixels, more than --max-pixels 40000000 allows.*--skip-bad" -- \
  "$gentrain" data import-folder --dir bomb --out bomb.h5 --size 4
# An attribute table of file names, and two images of that name in different sub-folders.
mkdir -p twins/a twins/b && cp png-bad/good.png twins/a/x.png && cp png-bad/good.png twins/b/x.png
printf 'file,odd\nx.png,1\n' > twins.csv
refused table-name-ambiguous "twins.csv: row 'x.png' could be .*twins/a/x.png or .*twins/b/x.png; name the images by their path" -- \
  "$gentrain" data import-folder --dir twins --out twins.h5 --size 4 --attributes twins.csv
refused import-overwrite "data.h5 already exists; pass --force" -- \
  "$gentrain" data import-idx --dir . --out data.h5

# Checkpoints.
refused resume-other-spec "model.hidden: \[8\] -> \[9\]" -- \
  "$gentrain" train spec.yaml name=source model.hidden=[9] --resume
refused run-dir-taken "runs/source already holds a run with checkpoints: pass --resume" -- \
  "$gentrain" train spec.yaml name=source
refused sample-count-zero "sample: -n/--count is 0; give the number of images to make" -- \
  "$gentrain" sample runs/source -n 0 -o none.png
refused sample-count-negative "sample: -n/--count is -5" -- \
  "$gentrain" sample runs/source -n -5 -o none.png
for c in runs/source/checkpoints/step-*; do
  printf 'x' | dd of="$c/state.bin" bs=1 seek=100 conv=notrunc 2>/dev/null
done
refused corrupt-checkpoint "state.bin: checksum mismatch \(the file is corrupt\)" -- \
  "$gentrain" eval "$c"
refused resume-all-corrupt "runs/source/checkpoints: every checkpoint is unreadable" -- \
  "$gentrain" train spec.yaml name=source --resume

echo "bad input: $passes passed, $failures failed"
[ "$failures" -eq 0 ]
