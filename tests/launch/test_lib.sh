# Shared by the shell tests (sourced): a scratch folder, pass/fail counting, tiny IDX data and
# the tiny VAE spec they train.
# After sourcing: $work is the current folder, removed at exit.
set -u
work=$(mktemp -d "/tmp/gentrain-${TEST_NAME:-test}-XXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
failures=0
passes=0
pass() { echo "ok   $1"; passes=$((passes + 1)); }
fail() { echo "FAIL $1"; failures=$((failures + 1)); }

check() {  # check NAME EXPECTED-EXIT PATTERN -- COMMAND...
  local name=$1 want=$2 pattern=$3
  shift 4
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" -ne "$want" ] || ! grep -qE -- "$pattern" <<<"$out"; then
    fail "$name: exit $rc (want $want), output:"
    echo "$out" | tail -15
  else
    pass "$name"
  fi
}

# make_idx SEED TRAIN TEST "PIXEL VALUES": an MNIST-layout folder of 4x4 images here, raw IDX.
make_idx() {
  python3 - "$@" <<'PY'
import struct, random, sys
seed, train, test, values = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
values = [int(v) for v in values.split()]
random.seed(seed)
for stem, n in (("train", train), ("t10k", test)):
    with open(f"{stem}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 4, 4))
        f.write(bytes(random.choice(values) for _ in range(n * 16)))
    with open(f"{stem}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + bytes(k % 10 for k in range(n)))
PY
}

# tiny_vae_spec NAME [YAML LINE...]: prints the tiny VAE spec the shell tests train (8 hidden
# units, 2 latents, one thread) on ./data.h5; each further argument is one more top-level line
# (train:, log:, ...), from line 5 on.
tiny_vae_spec() {
  local name=$1
  shift
  printf '%s\n' "name: $name" "model: {name: vae, hidden: [8], latent: 2, iw_samples: 4, iw_images: 4}" \
    "optim: {vae: {lr: 0.01}}" "data: {path: data.h5}" "$@" "runtime: {threads: 1}"
}

# fault_run_setup GENTRAIN: the fault tests' data (data.h5) and spec (spec.yaml: 20 steps of 12
# images, a checkpoint every 2), and final, which picks the final evaluation line of a run.
fault_run_setup() {
  make_idx 2 60 12 "0 255"
  "$1" data import-idx --dir . --out data.h5 >/dev/null 2>&1 || { echo "FAIL import"; exit 1; }
  tiny_vae_spec fault \
    'train: {global_batch: 12, epochs: 4}' \
    'log: {every_steps: 5}' \
    'eval: {batch: 4}' \
    'sample: {count: 4, every_epochs: 0}' \
    'checkpoint: {every_steps: 2, every_epochs: 0}' > spec.yaml
}
final() { grep -o "eval at step 20 (final): .*" | head -1; }
