#!/usr/bin/env bash
# deps.sh: installs everything convnetd needs to build, test and run, on a
# fresh Debian 12, as root. Idempotent: when every package is already
# installed it returns at once without touching apt (and without root).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# Build, daemon libraries, the default dataset, and Python (PyTorch) for the
# reference checks and benchmarks.
APT_PACKAGES=(
  build-essential cmake pkg-config git curl
  libopenblas-dev libmicrohttpd-dev libcjson-dev libpng-dev libsqlite3-dev
  zlib1g-dev libjpeg62-turbo-dev
  dataset-fashion-mnist
  python3 python3-torch python3-numpy python3-threadpoolctl
)

die() { echo "deps.sh: $*" >&2; exit 1; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  # "ii" = wanted and installed; anything else (absent, half-configured) needs apt.
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  [[ "$status" == ii* ]] || missing+=("$p")
done

if ((${#missing[@]} > 0)); then
  echo "deps.sh: installing ${missing[*]}" >&2
  [[ $(id -u) -eq 0 ]] || die "packages missing (${missing[*]}); run as root: sudo bash scripts/deps.sh"
  command -v apt-get >/dev/null || die "apt-get not found; this script targets Debian 12"
  apt-get update || die "apt-get update failed"
  apt-get install -y -o DPkg::Lock::Timeout=600 --no-install-recommends "${APT_PACKAGES[@]}" \
    || die "apt-get install failed"
fi

# ---- web dependencies (npm) --------------------------------------------------
# Reserved for the dashboard issue: the chart library and the browser tests
# (web/package.json) get installed here, with the same fast path.
# ------------------------------------------------------------------------------

exit 0
