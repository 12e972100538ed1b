#!/usr/bin/env bash
# test-emu.sh: the CUDA paths without a GPU. Builds build-emu/ with nn_cuda
# compiled against the emulated device of tests/gpu/emu (CONVNET_CUDA=EMU),
# then runs the cuda tests and the whole daemon suite with every training
# job on cuda:0, the emulated GPU. CI runs it after scripts/test.sh; the real
# GPU check is tests/gpu/check.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
cmake -S . -B build-emu -DCONVNET_CUDA=EMU -DCONVNET_TEST_DEVICE=cuda:0 \
  -DCONVNET_WERROR=ON -DCMAKE_BUILD_TYPE=Release
cmake --build build-emu -j2
# daemon_crash is left out: twenty kill -9s of an emulated GPU take minutes,
# and what it checks (checkpoints survive a kill) does not depend on the
# device; daemon_jobs pauses and resumes bit for bit on cuda:0 here.
ctest --test-dir build-emu -L 'cuda|daemon' -E daemon_crash --output-on-failure -j2
