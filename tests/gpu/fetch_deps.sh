#!/usr/bin/env bash
# fetch_deps.sh: run on the (online, Debian 12) development machine, not on
# the GPU machine. Downloads the .deb files that check.sh unpacks into a
# private prefix on the offline GPU machine when its image lacks them
# (pkg-config, cJSON, libmicrohttpd, zlib headers; OpenBLAS for the CPU
# side of the comparison). They land in .gpu-deps/ (about 9 MB), which is
# git-ignored through .git/info/exclude; carry it: run(carry=[".gpu-deps"],
# command="bash tests/gpu/check.sh").
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpu-deps
grep -qxF '/.gpu-deps/' .git/info/exclude 2>/dev/null || echo '/.gpu-deps/' >>.git/info/exclude
cd .gpu-deps
apt-get download pkgconf pkgconf-bin libpkgconf3 libcjson1 libcjson-dev \
  libmicrohttpd12 libmicrohttpd-dev zlib1g zlib1g-dev \
  libopenblas0 libopenblas0-pthread libgfortran5 libquadmath0
ls
