#!/usr/bin/env bash
# check.sh: THE script to run on the GPU machine (an H200, sm_90), from any
# directory: builds with CUDA, runs the `cuda` ctest label (CUDA vs CPU on
# every op) and, when they were built, the layer and training benchmarks.
# Meant to finish within 5 minutes; the full log also goes to $OUT/check.log
# (or build-gpu/check.log).
#
# That machine is offline and may lack the Debian -dev packages the full
# build needs (pkg-config, libcjson, libmicrohttpd, zlib; OpenBLAS at run
# time). In order, check.sh: uses them if present; unpacks .deb files from
# $CONVNET_GPU_DEPS (default .gpu-deps/, see tests/gpu/fetch_deps.sh) into
# a private prefix; tries apt-get; and if the full configure or build still
# fails, builds just nn + nn_cuda + test_cuda_ops with the compilers directly
# (build-gpu-min/) so the CUDA check runs regardless.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
START=$(date +%s)
BUDGET=${CHECK_BUDGET_S:-285} # seconds for the whole script
LOGDIR=${OUT:-$ROOT/build-gpu}
mkdir -p "$LOGDIR"
exec > >(tee -a "$LOGDIR/check.log") 2>&1

left() { echo $((BUDGET - ($(date +%s) - START))); }
say() { printf '\n==== [%3ss] %s\n' "$(($(date +%s) - START))" "$*"; }
JOBS=${JOBS:-16}

NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$NVCC")")}
export PATH="$CUDA_HOME/bin:$PATH"

say "machine"
nvidia-smi -L || echo "nvidia-smi failed"
"$NVCC" --version | tail -2 || true
cmake --version | head -1 || true
# On a machine with a GPU, a skipped CUDA test is a failure.
if nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  export NN_CUDA_REQUIRE=1
else
  echo "WARNING: no GPU visible: the CUDA test will report 'skipped'"
fi

# ---- dependencies ---------------------------------------------------------
have_deps() {
  command -v pkg-config >/dev/null &&
    pkg-config --exists libcjson libmicrohttpd zlib 2>/dev/null
}

# Unpacks carried .debs into a prefix and points pkg-config, CMake and the
# loader at it. dpkg -x, not dpkg -i: nothing outside the prefix changes.
use_debs() {
  local dir=$1 pre=/tmp/convnet-deps
  rm -rf "$pre" && mkdir -p "$pre"
  for f in "$dir"/*.deb; do dpkg -x "$f" "$pre"; done
  # Absolute symlinks (libz.so -> /lib/...) must point into the prefix.
  find "$pre" -type l | while read -r l; do
    t=$(readlink "$l")
    if [[ $t == /* && -e $pre$t ]]; then ln -sfn "$pre$t" "$l"; fi
  done
  local lib=$pre/usr/lib/x86_64-linux-gnu
  export PATH="$pre/usr/bin:$PATH"
  export LD_LIBRARY_PATH="$lib:$lib/openblas-pthread:$pre/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
  export PKG_CONFIG_PATH="$lib/pkgconfig:$pre/usr/share/pkgconfig"
  export PKG_CONFIG_SYSROOT_DIR=$pre
  export CMAKE_PREFIX_PATH="$pre/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  [[ -x $pre/usr/bin/pkg-config ]] || ln -sf pkgconf "$pre/usr/bin/pkg-config"
  # libmicrohttpd.pc names gnutls (Requires.private), whose -dev tree we do
  # not carry; a stub stops pkg-config failing on it or adding its include
  # paths, which CMake rejects when they do not exist.
  mkdir -p "$lib/pkgconfig"
  printf 'Name: gnutls\nDescription: stub (check.sh)\nVersion: 3.7.9\n' >"$lib/pkgconfig/gnutls.pc"
}

say "dependencies"
DEBS=${CONVNET_GPU_DEPS:-$ROOT/.gpu-deps}
if have_deps; then
  echo "pkg-config finds libcjson, libmicrohttpd, zlib"
elif compgen -G "$DEBS/*.deb" >/dev/null && command -v dpkg >/dev/null; then
  echo "unpacking $(ls "$DEBS"/*.deb | wc -l) carried packages from $DEBS"
  use_debs "$DEBS"
elif command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
  echo "trying apt-get (fails fast when offline)"
  timeout 60 bash -c 'apt-get -q -o Acquire::Retries=0 -o Acquire::http::Timeout=5 update &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      pkg-config libcjson-dev libmicrohttpd-dev zlib1g-dev libopenblas0' 2>&1 | tail -3 || true
fi
have_deps && echo "dependencies: complete" || echo "dependencies: incomplete (fallback build if needed)"

# ---- build ----------------------------------------------------------------
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
FULL=0
say "configure build-gpu"
if cmake -S . -B build-gpu "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCONVNET_CUDA=ON \
     -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES=90 >"$LOGDIR/configure.log" 2>&1; then
  say "build (all targets)"
  if cmake --build build-gpu -j"$JOBS" >"$LOGDIR/build.log" 2>&1; then
    FULL=1
  else
    tail -30 "$LOGDIR/build.log"
    say "full build failed: building the CUDA test and benchmarks one by one"
    cmake --build build-gpu -j"$JOBS" --target test_cuda_ops 2>&1 | tail -20 && FULL=1
    for t in bench_layers bench_train; do
      cmake --build build-gpu -j"$JOBS" --target "$t" >/dev/null 2>&1 || echo "($t not built)"
    done
  fi
else
  tail -20 "$LOGDIR/configure.log"
fi
# Without tests/CMakeLists.txt's add_subdirectory(gpu) there is no test to run.
if [[ $FULL == 1 && ! -x build-gpu/tests/gpu/test_cuda_ops ]]; then
  echo "build-gpu has no tests/gpu/test_cuda_ops (is tests/gpu wired into tests/CMakeLists.txt?)"
  FULL=0
fi

# The direct build: nn (every source that compiles: the test needs none of
# the cJSON/zlib parts), nn_cuda, test_cuda_ops.
build_min() {
  local b=build-gpu-min lib=$CUDA_HOME/lib64
  [[ -d $lib ]] || lib=$CUDA_HOME/targets/x86_64-linux/lib
  rm -rf $b && mkdir -p $b/nn $b/cuda
  local pids=() # waited for by pid: a bare `wait` would also wait for the log's tee
  local cflags=(-std=c11 -O2 -fno-math-errno -pthread -Inn/include -Inn/src)
  for f in nn/src/*.c; do
    gcc "${cflags[@]}" -c "$f" -o "$b/nn/$(basename "$f" .c).o" 2>/dev/null &
    pids+=($!)
  done
  local cu=(-std=c++17 -O3 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
            -Inn/include -Inn_cuda/include -Inn_cuda/src)
  for f in nn_cuda/src/*.cu; do
    "$NVCC" "${cu[@]}" -c "$f" -o "$b/cuda/$(basename "$f").o" &
    pids+=($!)
  done
  for f in nn_cuda/src/*.c; do
    gcc -std=c11 -O2 -Inn/include -Inn_cuda/include -Inn_cuda/src -I"$CUDA_HOME/include" \
      -c "$f" -o "$b/cuda/$(basename "$f").o" &
    pids+=($!)
  done
  gcc -std=c11 -O2 -Inn/include -Inn_cuda/include -c tests/gpu/test_cuda_ops.c -o $b/test.o &
  pids+=($!)
  for p in "${pids[@]}"; do wait "$p" || true; done
  ls $b/nn/*.o >/dev/null && ar rcs $b/libnn.a $b/nn/*.o
  g++ -o $b/test_cuda_ops $b/test.o $b/cuda/*.o $b/libnn.a -L"$lib" -Wl,-rpath,"$lib" \
    -lcublas -lcudart -pthread -ldl -lm
}

TEST_RC=0
if [[ $FULL == 1 ]]; then
  say "ctest -L cuda"
  ctest --test-dir build-gpu -L cuda --output-on-failure --no-tests=error --timeout 150 || TEST_RC=$?
else
  say "fallback: direct build of nn + nn_cuda + test_cuda_ops in build-gpu-min"
  if build_min; then
    say "test_cuda_ops"
    timeout 150 build-gpu-min/test_cuda_ops || TEST_RC=$?
  else
    echo "FAIL: even the direct build failed"
    TEST_RC=1
  fi
fi
if [[ $TEST_RC == 77 ]]; then # only without NN_CUDA_REQUIRE, i.e. no GPU
  say "CUDA tests: skipped (no device)"
  TEST_RC=0
elif [[ $TEST_RC == 0 && -z ${NN_CUDA_REQUIRE:-} ]]; then
  say "CUDA tests: not run (no GPU visible)"
elif [[ $TEST_RC == 0 ]]; then
  say "CUDA tests: PASS"
else
  say "CUDA tests: FAIL (status $TEST_RC)"
fi

# ---- benchmarks (written elsewhere; skipped when absent) ------------------
run_bench() {
  local t=$1 cap=$2
  shift 2
  local bin=build-gpu/bench/$t
  if [[ ! -x $bin ]]; then
    say "$t: not built, skipped"
    return 0
  fi
  local n
  n=$(left)
  ((n > cap)) && n=$cap
  if ((n < 10)); then
    say "$t: no time left, skipped"
    return 0
  fi
  say "$t $* (limit ${n}s)"
  timeout "$n" "$bin" "$@" || echo "($t exited with status $?)"
}
run_bench bench_layers 100
run_bench bench_train 150 --device cuda:0 --iters 750

if [[ $TEST_RC != 0 ]]; then
  say "done: CUDA tests FAIL"
elif [[ -n ${NN_CUDA_REQUIRE:-} ]]; then
  say "done: CUDA tests PASS"
else
  say "done: CUDA tests not run (no GPU)"
fi
exit "$TEST_RC"
