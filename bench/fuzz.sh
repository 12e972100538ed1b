#!/usr/bin/env bash
# fuzz.sh: the long fuzzing run. Builds the libFuzzer targets (clang,
# -DCONVNET_FUZZ=ON, ASan+UBSan) in $FUZZ_BUILD (default build-fuzz) and
# runs every tests/fuzz target for FUZZ_MINUTES minutes each (default 10)
# on a temporary copy of its seed corpus, so the committed corpus is never
# rewritten. Prints one line per target:
#   bench=fuzz target=NAME seconds=S execs=N crashes=K corpus=FILES
# and exits 1 when any target left a crash, leak, timeout or OOM artifact
# (kept under $FUZZ_ARTIFACTS, default $FUZZ_BUILD/fuzz-artifacts/NAME/,
# for adding to tests/fuzz/corpus/NAME/ once the bug is fixed).
# Usage: FUZZ_MINUTES=1 bench/fuzz.sh [target ...]   (default: all targets)
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${FUZZ_MINUTES:-10}
build=${FUZZ_BUILD:-build-fuzz}
artifacts=${FUZZ_ARTIFACTS:-$build/fuzz-artifacts}
if ! [[ $minutes =~ ^[0-9]+$ ]] || ((minutes < 1)); then
  echo "fuzz.sh: FUZZ_MINUTES must be a whole number >= 1" >&2
  exit 2
fi
secs=$((minutes * 60))

if [[ ${FUZZ_SKIP_BUILD:-0} != 1 ]]; then
  CC=clang cmake -S . -B "$build" -DCONVNET_CUDA=OFF -DCONVNET_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j"$(nproc)" --target fuzz_targets >/dev/null
fi

if (($# > 0)); then
  targets=("$@")
else
  targets=()
  for src in tests/fuzz/fuzz_*.c; do
    n=${src##*/fuzz_}
    targets+=("${n%.c}")
  done
fi

work=$(mktemp -d /tmp/convnet-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
for name in "${targets[@]}"; do
  bin=$build/tests/fuzz/fuzz_$name
  if [[ ! -x $bin ]]; then
    echo "fuzz.sh: $bin is missing (is $name in FUZZ_TARGETS?)" >&2
    failed=1
    continue
  fi
  corpus=$work/corpus/$name
  art=$artifacts/$name
  mkdir -p "$corpus" "$art"
  cp tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null || true
  log=$work/$name.log
  start=$(date +%s)
  # -max_total_time bounds the run; timeout(1) is the backstop should a
  # single input hang past libFuzzer's own -timeout.
  rc=0
  timeout -k 10 $((secs + 120)) "$bin" -max_total_time="$secs" -timeout=20 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art/" \
    "$corpus" >"$log" 2>&1 || rc=$?
  end=$(date +%s)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  # slow-unit-* files are not counted: slowness alone is not a bug
  bad=$(find "$art" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' \
    -o -name 'timeout-*' -o -name 'oom-*' \) -newer "$corpus" | wc -l)
  if ((rc != 0 && bad == 0)); then
    bad=1 # died without an artifact (killed by timeout(1), a sanitizer abort)
  fi
  echo "bench=fuzz target=$name seconds=$((end - start)) execs=${execs:-0}" \
    "crashes=$bad corpus=$(find "$corpus" -type f | wc -l)"
  if ((bad > 0)); then
    failed=1
    cp "$log" "$art/fuzz.log"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | head -n 5 >&2 || true
    echo "fuzz.sh: $name: $bad failing input(s) and log in $art/" >&2
  fi
done
exit "$failed"
