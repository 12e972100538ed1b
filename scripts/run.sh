#!/usr/bin/env bash
# run.sh: builds convnetd and runs it in the foreground on 127.0.0.1:8080
# with Fashion-MNIST from the Debian package. Ctrl-C stops it cleanly.
# State lives in $CONVNETD_STATE (default ~/.local/state/convnetd).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
cmake -S . -B build
cmake --build build -j2 --target convnetd

state=${CONVNETD_STATE:-$HOME/.local/state/convnetd}
# dataset-fashion-mnist installs /usr/share/datasets/fashion-mnist/*.gz.
data=/usr/share/datasets
url=http://127.0.0.1:8080

echo "dashboard:    $url/"
echo "health check: curl -s $url/v1/health"
exec build/daemon/convnetd --listen 127.0.0.1:8080 --state-dir "$state" --data-dir "$data" "$@"
