#!/bin/bash
# Installs and builds (launch/setup.sh), then runs the whole test suite with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
ctest --test-dir build --output-on-failure "$@"
