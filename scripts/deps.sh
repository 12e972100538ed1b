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
  clang libclang-rt-14-dev
  wrk
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
  apt-get -o DPkg::Lock::Timeout=600 update || die "apt-get update failed"
  apt-get install -y -o DPkg::Lock::Timeout=600 --no-install-recommends "${APT_PACKAGES[@]}" \
    || die "apt-get install failed"
fi

# ---- web dependencies (npm) --------------------------------------------------
# The dashboard's chart library (web/package.json: uPlot) is copied from npm's
# tree into web/vendor/, so the daemon serves, and `cmake --install` installs,
# plain files: nothing for the user to build. The browser tests drive Debian's
# chromium with playwright-core (tests/web/package.json), which must never
# download a browser of its own. Fast path: node, npm and chromium present,
# and each npm tree installed from the lock file it was installed from (its
# hash is kept beside it): then nothing runs, not even npm.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

web_apt=()
command -v node >/dev/null || web_apt+=(nodejs)
command -v npm >/dev/null || web_apt+=(npm)
[[ -x /usr/bin/chromium ]] || web_apt+=(chromium)
if ((${#web_apt[@]} > 0)); then
  echo "deps.sh: installing ${web_apt[*]}" >&2
  [[ $(id -u) -eq 0 ]] || die "packages missing (${web_apt[*]}); run as root: sudo bash scripts/deps.sh"
  apt-get -o DPkg::Lock::Timeout=600 update || die "apt-get update failed"
  apt-get install -y -o DPkg::Lock::Timeout=600 --no-install-recommends "${web_apt[@]}" \
    || die "apt-get install ${web_apt[*]} failed"
fi

lock_hash() { sha256sum "$1/package-lock.json" | cut -d' ' -f1; }

# npm_ci DIR: a clean install of DIR's lock file (no audit, no browser).
npm_ci() {
  echo "deps.sh: npm ci in $1" >&2
  (cd "$1" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) \
    || die "npm ci in $1 failed (is the npm registry reachable?)"
}

# The dashboard needs only web/vendor/; its stamp is the lock file's hash.
vendor=$repo/web/vendor
if [[ ! -f $vendor/uplot/uPlot.iife.min.js || "$(cat "$vendor/.lock-sha256" 2>/dev/null)" != "$(lock_hash "$repo/web")" ]]; then
  npm_ci "$repo/web"
  rm -rf "$vendor"
  mkdir -p "$vendor/uplot"
  dist=$repo/web/node_modules/uplot/dist
  cp "$dist/uPlot.iife.min.js" "$dist/uPlot.min.css" "$repo/web/node_modules/uplot/LICENSE" "$vendor/uplot/"
  lock_hash "$repo/web" > "$vendor/.lock-sha256"
  chown_back=1
fi

tests_web=$repo/tests/web
if [[ "$(cat "$tests_web/node_modules/.lock-sha256" 2>/dev/null)" != "$(lock_hash "$tests_web")" ]]; then
  npm_ci "$tests_web"
  lock_hash "$tests_web" > "$tests_web/node_modules/.lock-sha256"
  chown_back=1
fi

# Under sudo, what was written into the checkout goes back to its user.
if [[ -n ${chown_back:-} && $(id -u) -eq 0 && -n ${SUDO_UID:-} ]]; then
  chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$vendor" "$repo/web/node_modules" "$tests_web/node_modules" \
    2>/dev/null || true
fi
# ------------------------------------------------------------------------------

exit 0
