#!/usr/bin/env bash
# run.sh: installs what convnetd needs (scripts/deps.sh), builds it, and runs
# it on 127.0.0.1:$CONVNETD_PORT (default 8080) with the default data set,
# Fashion-MNIST from the Debian package. Once it answers, prints the
# addresses and a curl line that submits a first job. Ctrl-C stops it
# cleanly (running jobs checkpoint and resume at the next start).
# State (SQLite store, checkpoints) lives in $CONVNETD_STATE, default
# ~/.local/state/convnetd. Extra arguments go to convnetd (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)" --target convnetd

state=${CONVNETD_STATE:-$HOME/.local/state/convnetd}
port=${CONVNETD_PORT:-8080}
# dataset-fashion-mnist installs /usr/share/datasets/fashion-mnist/*.gz.
data=/usr/share/datasets
url=http://127.0.0.1:$port

build/daemon/convnetd --listen "127.0.0.1:$port" --state-dir "$state" --data-dir "$data" "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM

for _ in $(seq 1 300); do
  if curl -fsS -o /dev/null "$url/v1/health" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" || exit $?
    exit 1
  fi
  sleep 0.1
done

cat <<MSG

convnetd is running (pid $pid), state in $state.
  dashboard:  $url/
  API:        $url/v1/openapi.json
  health:     curl -s $url/v1/health

Submit a first job (Fashion-MNIST, three-layer convnet, one epoch on 2000 images):
  curl -s -X POST $url/v1/jobs -H 'Content-Type: application/json' -d '{"name":"fmnist-3layer","dataset":{"name":"fashion-mnist","val_fraction":0.2,"limit":2000},"model":{"preset":"three_layer_convnet","hidden_dim":500,"weight_scale":1e-3,"reg":1e-3},"solver":{"update_rule":"adam","learning_rate":2e-3,"batch_size":64,"epochs":1,"seed":0},"device":"auto"}'
Watch it:
  curl -s -N $url/v1/jobs/1/events

Ctrl-C stops convnetd.
MSG

# wait returns early when a trapped signal arrives; wait again for the exit.
status=0
wait "$pid" || status=$?
if kill -0 "$pid" 2>/dev/null; then
  status=0
  wait "$pid" || status=$?
fi
exit "$status"
