#!/usr/bin/env bash
# load.sh: HTTP load on convnetd with wrk. Starts the convnetd built in
# $LOAD_BUILD (default build) on 127.0.0.1:0 with a temporary state and data
# directory (a synthetic 28x28 IDX data set), trains a tiny model through
# the API (three_layer_convnet, 4 filters, hidden 16, 1 epoch) and waits for
# it to succeed, then runs wrk three times in a row, LOAD_SECONDS each
# (default 60) at LOAD_CONNECTIONS connections (default 256) on 2 threads,
# with bench/load.lua's mix: GET /v1/jobs, /v1/health, /v1/models/{id},
# /v1/jobs/{id}/metrics?limit=50 and POST /v1/models/{id}/classify (a PNG).
# After each run it reads the daemon's VmRSS and prints
#   bench=load run=N rps=R p50_ms=A p99_ms=B errors=E non2xx=X socket_errors=S rss_mb=M
# and at the end
#   bench=load_rss first_mb=M1 last_mb=M3 growth=G   (G = M3/M1 - 1)
# The daemon gets --max-connections LOAD_CONNECTIONS+16 when it has that
# setting. Goals: errors=0 in every run, growth within 10%. Exit status 1 when a
# goal is missed, 2 when the set-up fails. Only 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${LOAD_BUILD:-build}
secs=${LOAD_SECONDS:-60}
conns=${LOAD_CONNECTIONS:-256}
bin=$build/daemon/convnetd
command -v wrk >/dev/null || { echo "load.sh: wrk is missing (scripts/deps.sh)" >&2; exit 2; }
command -v curl >/dev/null || { echo "load.sh: curl is missing" >&2; exit 2; }
[[ -x $bin ]] || { echo "load.sh: $bin is missing: build convnetd first" >&2; exit 2; }

tmp=$(mktemp -d /tmp/convnet-load-XXXXXX)
pid=
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  if [[ -n $pid ]]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# A synthetic IDX data set (class k: a bright block at its own place plus
# noise) and one 28x28 grey PNG of class 3, written with the standard
# library only.
python3 - "$tmp" <<'PY'
import os, random, struct, sys, zlib
root = sys.argv[1]
d = os.path.join(root, "data", "synth")
os.makedirs(d)
rng = random.Random(5)
def image(label):
    px = bytearray(rng.randrange(40) for _ in range(28 * 28))
    y0, x0 = 2 + (label // 4) * 8, 2 + (label % 4) * 6
    for y in range(y0, y0 + 6):
        for x in range(x0, x0 + 5):
            px[y * 28 + x] = 200 + rng.randrange(56)
    return bytes(px)
n = 1200
labels = [i % 10 for i in range(n)]
with open(os.path.join(d, "train-images-idx3-ubyte"), "wb") as f:
    f.write(struct.pack(">IIII", 0x803, n, 28, 28))
    for l in labels:
        f.write(image(l))
with open(os.path.join(d, "train-labels-idx1-ubyte"), "wb") as f:
    f.write(struct.pack(">II", 0x801, n) + bytes(labels))
def chunk(t, b):
    return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))
px = image(3)
raw = b"".join(b"\0" + px[y * 28:(y + 1) * 28] for y in range(28))
with open(os.path.join(root, "digit.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
PY

# Room for every wrk connection when the daemon's connection cap is
# configurable (max-connections); older builds keep their compiled-in cap.
extra=()
if "$bin" --help 2>&1 | grep -q -- '--max-connections '; then
  extra=(--max-connections $((conns + 16)))
fi
"$bin" --listen 127.0.0.1:0 --state-dir "$tmp/state" --data-dir "$tmp/data" --threads 1 \
  "${extra[@]}" 2>"$tmp/convnetd.log" &
pid=$!
port=
for _ in $(seq 300); do
  port=$(sed -n 's|.*convnetd: listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' \
    "$tmp/convnetd.log" | head -n 1)
  [[ -n $port ]] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $port ]]; then
  echo "load.sh: convnetd did not start:" >&2
  cat "$tmp/convnetd.log" >&2
  exit 2
fi
base=http://127.0.0.1:$port

job=$(curl -sS --max-time 10 -X POST "$base/v1/jobs" -H 'Content-Type: application/json' \
  -d '{"name":"load-model","dataset":{"name":"synth","val_fraction":0.2,"limit":1200},
       "model":{"preset":"three_layer_convnet","num_filters":4,"hidden_dim":16},
       "solver":{"epochs":1,"batch_size":32},"device":"cpu"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
status=
for _ in $(seq 600); do
  status=$(curl -sS --max-time 10 "$base/v1/jobs/$job" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  [[ $status == succeeded || $status == failed || $status == cancelled ]] && break
  sleep 0.5
done
if [[ $status != succeeded ]]; then
  echo "load.sh: training job $job ended as '$status'" >&2
  exit 2
fi

rss_mb() {
  awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"
}

fail=0
first=""
last=""
for run in 1 2 3; do
  out=$(LOAD_MODEL=$job LOAD_PNG=$tmp/digit.png \
    timeout -k 5 $((secs + 60)) wrk -t2 -c"$conns" -d"${secs}s" --timeout 10s \
    -s bench/load.lua "$base" 2>&1) || { echo "$out" >&2; exit 2; }
  line=$(grep '^wrk: ' <<<"$out")
  get() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$line"; }
  reqs=$(get requests) dur=$(get duration_us)
  non2xx=$(get non2xx)
  sock=$(($(get connect) + $(get read) + $(get write) + $(get timeout)))
  rss=$(rss_mb)
  [[ -z $first ]] && first=$rss
  last=$rss
  errors=$((non2xx + sock))
  ((errors == 0)) || fail=1
  awk -v run="$run" -v r="$reqs" -v d="$dur" -v p50="$(get p50_us)" -v p99="$(get p99_us)" \
    -v e="$errors" -v x="$non2xx" -v s="$sock" -v m="$rss" 'BEGIN {
      printf "bench=load run=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d non2xx=%d " \
             "socket_errors=%d rss_mb=%s\n", run, r / (d / 1e6), p50 / 1e3, p99 / 1e3, e, x, s, m }'
done
growth=$(awk -v a="$first" -v b="$last" 'BEGIN { printf "%.3f", b / a - 1 }')
echo "bench=load_rss first_mb=$first last_mb=$last growth=$growth"
awk -v g="$growth" 'BEGIN { exit !(g <= 0.10) }' || fail=1
kill -0 "$pid" 2>/dev/null || { echo "load.sh: convnetd died under load" >&2; fail=1; }
exit "$fail"
