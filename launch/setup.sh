#!/bin/bash
# Installs what gentrain needs from Debian 12's archive (when missing) and builds it into build/.
# Safe to run again: it installs nothing twice and rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(g++ cmake ninja-build ccache pkg-config python3
          libtorch-dev libopenblas0-pthread libopenmpi-dev openmpi-bin libhdf5-dev
          libyaml-cpp-dev libgtest-dev libpng-dev libjpeg-dev libcli11-dev zlib1g-dev
          libprotobuf-dev protobuf-compiler dataset-fashion-mnist clang-format)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Two parallel compile jobs at most: a LibTorch translation unit takes about 1 GB of memory.
jobs=$(( $(nproc) < 4 ? $(nproc) : 4 ))
[ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
