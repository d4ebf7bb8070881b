# Sourced by the *-vs-pytorch.sh benchmarks: what every side-by-side run needs first.
# PyTorch from Debian (the same LibTorch 1.13 that gentrain links), installed when missing, and
# binarized Fashion-MNIST (threshold 128) made with the data tool when missing.
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y -qq --no-install-recommends python3-torch python3-numpy >/dev/null
fi
data=datasets/fashion-mnist-bin128.h5
[ -f "$data" ] || build/gentrain data import-idx --dir /usr/share/datasets/fashion-mnist \
  --out "$data" --binarize threshold:128 --labels fashion-mnist >/dev/null
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
