#!/usr/bin/env bash
# test.sh: the one test command (README, CI): dependencies, a warnings-as-
# errors build in build/, then every ctest suite. Exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
cmake -S . -B build -DCONVNET_WERROR=ON
cmake --build build -j2
ctest --test-dir build --output-on-failure -j2
