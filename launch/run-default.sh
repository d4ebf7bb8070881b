#!/bin/bash
# The default experiment: VAE 784-400-20 on binarized Fashion-MNIST, 2 ranks under mpirun
# (`gentrain launch`: threads per rank and binding chosen for this machine).
# Installs and builds first (launch/setup.sh), imports the data once, then trains.
# Extra arguments are spec overrides, e.g. `train.epochs=1`, or `--resume`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
data=datasets/fashion-mnist-bin128.h5
if [ ! -f "$data" ]; then
  build/gentrain data import-idx --dir /usr/share/datasets/fashion-mnist --out "$data" \
    --binarize threshold:128 --labels fashion-mnist
fi
exec build/gentrain launch -n "${RANKS:-2}" train configs/vae-fashion-mnist.yaml "$@"
