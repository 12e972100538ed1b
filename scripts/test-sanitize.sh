#!/usr/bin/env bash
# test-sanitize.sh: the whole ctest suite again, built by clang with
# AddressSanitizer + UndefinedBehaviorSanitizer (leaks reported at exit) in
# build-asan/, then each fuzz target for a short while (FUZZ_SECONDS, 20 by
# default) from its seed corpus. CI runs it after scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
CC=clang CXX=clang++ cmake -S . -B build-asan -DCONVNET_CUDA=OFF -DCONVNET_WERROR=ON \
  -DCONVNET_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build-asan -j2
ctest --test-dir build-asan --output-on-failure -j2

# libFuzzer: a separate clang build with -fsanitize=fuzzer.
CC=clang cmake -S . -B build-fuzz -DCONVNET_CUDA=OFF -DCONVNET_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build-fuzz -j2 --target fuzz_targets
secs=${FUZZ_SECONDS:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for bin in build-fuzz/tests/fuzz/fuzz_*; do
  name=${bin##*/fuzz_}
  mkdir -p "$work/$name"
  cp tests/fuzz/corpus/"$name"/* "$work/$name/" 2>/dev/null || true
  echo "fuzz: $name for ${secs}s"
  "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 \
    "$work/$name" 2>&1 | grep -E "^(Done|stat::number_of_executed_units|==.*ERROR|SUMMARY)" || true
  # libFuzzer exits non-zero and writes crash-* on a finding
  if ls crash-* leak-* timeout-* oom-* >/dev/null 2>&1; then
    echo "fuzz: $name found a failing input" >&2
    exit 1
  fi
done
