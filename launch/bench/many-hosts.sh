#!/bin/bash
# What the network between hosts costs (issue 19), on an emulated cluster (tests/cluster/:
# network and UTS namespaces on a private bridge; needs root and iproute2): two emulated nodes
# with one rank each (Open MPI's TCP over the veth bridge) against one node with two ranks
# (shared memory). Both layouts unbound, one thread per rank, on the same cores. Prints the
# all-reduce bus bandwidth (gentrain bench allreduce) and the default VAE's images/s (gentrain
# bench train), and the two-node share of each. Needs a build and the default dataset
# (bash launch/run-default.sh imports it). STEPS=N timed training steps (default 400).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
source tests/cluster/cluster.sh
why=$(cluster_missing)
[ -z "$why" ] || { echo "many-hosts: cannot emulate hosts here: $why"; exit 1; }
[ -f datasets/fashion-mnist-bin128.h5 ] || { echo "many-hosts: no datasets/fashion-mnist-bin128.h5; run bash launch/run-default.sh once"; exit 1; }
dir=$(mktemp -d /tmp/gentrain-many-hosts-XXXX)
trap 'cluster_down; rm -rf "$dir"' EXIT
cluster_up 2 "$dir"
steps=${STEPS:-400}
g=$root/build/gentrain
one=(-np 2 --host node1:2)
two=(-np 2 --host node1:1,node2:1)
# figures LAYOUT...: "bus GB/s at 4 MB, at 32 MB, images/s" of one layout.
figures() {
  local reduce train
  reduce=$(cluster_mpirun "$@" --bind-to none -x OMP_NUM_THREADS=1 "$g" bench allreduce \
    --mb 4 --mb 32 --iterations 20 2>&1 | grep -oE "raw MPI_Allreduce [0-9.]+ ms \([0-9.]+ GB/s bus" |
    grep -oE "[0-9.]+ GB/s" | cut -d' ' -f1 | tr '\n' ' ')
  train=$(cluster_mpirun "$@" --bind-to none -x OMP_NUM_THREADS=1 "$g" bench train \
    configs/vae-fashion-mnist.yaml runtime.threads=1 --steps "$steps" --warmup 30 2>&1 |
    grep -oE "RESULT images_per_s=[0-9.]+" | cut -d= -f2)
  echo "$reduce$train"
}
read -r one4 one32 oneImages < <(figures "${one[@]}")
read -r two4 two32 twoImages < <(figures "${two[@]}")
python3 - "$one4" "$one32" "$oneImages" "$two4" "$two32" "$twoImages" <<'PY'
import sys
o4, o32, oi, t4, t32, ti = map(float, sys.argv[1:])
print(f"one node x 2 ranks:  all-reduce bus {o4:.2f} GB/s (4 MB), {o32:.2f} GB/s (32 MB); default VAE {oi:.0f} images/s")
print(f"two nodes x 1 rank:  all-reduce bus {t4:.2f} GB/s (4 MB), {t32:.2f} GB/s (32 MB); default VAE {ti:.0f} images/s")
print(f"RESULT two_nodes_share: all-reduce {t32 / o32:.2f} of one node's bandwidth (32 MB), training {ti / oi:.2f} of its images/s")
PY
