#!/usr/bin/env bash
# Throughput benchmark (issue 9): starts a node, runs `pm bench --ceilings`
# against it and prints the table (and writes it as JSON).
#
#   scripts/bench.sh [embedded|distributed|scaled] [MESSAGES] [CONCURRENCY]
#
#   embedded     `pm serve` on one local file
#   distributed  one process per role over RabbitMQ, HBase and Elasticsearch
#   scaled       the same with two authorizers (each behind its own gateway)
#                and two writers
#
# The distributed runs use the servers scripts/services.sh started (same
# environment: PM_RABBITMQ_PORT, PM_ES_PORT, PM_HBASE_THRIFT_PORT) under a
# fresh prefix; its tables, indices and queues stay behind on those servers
# (their memstores stay in HBase's heap: after some 50 runs HBase took a
# third to a half more CPU per envelope; stop the servers and delete
# PM_SERVICES_DIR's data to start afresh, which is how runs compare).
# PM_BIN names the pm binary (default: a release build made here);
# PM_CLIENT_BIN, if set, runs `pm bench` itself, so that two builds of the
# node can be compared by one load client (its report has CPU per envelope).
# Figures and logs go to target/bench/<deployment>-<time>/. A distributed
# run's table ends with the HBase and Elasticsearch requests each envelope
# cost during the ingest (every role's /metrics, --watch-metrics).
set -euo pipefail
cd "$(dirname "$0")/.."
deployment=${1:-embedded}
messages=${2:-4000}
concurrency=${3:-8}
case $deployment in embedded | distributed | scaled) ;; *)
  echo "usage: scripts/bench.sh [embedded|distributed|scaled] [MESSAGES] [CONCURRENCY]" >&2
  exit 2
  ;;
esac
if [[ -z ${PM_BIN:-} ]]; then
  cargo build --release --locked --bin pm
  PM_BIN=target/release/pm
fi
pm=$(realpath "$PM_BIN")
out=target/bench/$deployment-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
out=$(realpath "$out")
pids=()
role_urls=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# Starts `pm ROLE ARGS...` on a free port; sets $started_url and $started_pid.
start() {
  local role=$1 log=$out/$1-${#pids[@]}.log
  shift
  RUST_LOG=${RUST_LOG:-warn} "$pm" "$role" --data-dir "$out/data" --listen 127.0.0.1:0 "$@" >"$log.out" 2>"$log" &
  started_pid=$!
  pids+=("$started_pid")
  for _ in $(seq 600); do
    started_url=$(grep -o 'http://[^ ]*' "$log.out" | head -1 || true)
    [[ -n $started_url ]] && break
    kill -0 "$started_pid" 2>/dev/null || { cat "$log" >&2; echo "bench: pm $role died" >&2; exit 1; }
    sleep 0.2
  done
  [[ -n $started_url ]] || { echo "bench: pm $role printed no URL" >&2; exit 1; }
  started_url=${started_url%/teleferic}
  role_urls+=("$started_url")
  for _ in $(seq 600); do
    curl -fs "$started_url/readyz" >/dev/null && return 0
    sleep 0.2
  done
  echo "bench: pm $role at $started_url is not ready" >&2
  exit 1
}

if [[ $deployment != embedded ]]; then
  prefix=bench$(date +%s)_
  export PM_BACKENDS__STORE=hbase PM_BACKENDS__INDEX=elasticsearch PM_BACKENDS__QUEUE=rabbitmq
  export PM_HBASE__PORT=${PM_HBASE_THRIFT_PORT:-9090} PM_HBASE__TABLE_PREFIX=$prefix
  export PM_ELASTICSEARCH__URL=http://127.0.0.1:${PM_ES_PORT:-9200} PM_ELASTICSEARCH__INDEX_PREFIX=$prefix
  export PM_RABBITMQ__URL="amqp://guest:guest@127.0.0.1:${PM_RABBITMQ_PORT:-5672}/%2f" PM_RABBITMQ__PREFIX=$prefix
fi
"$pm" keygen --out "$out/genesis.key" >/dev/null
RUST_LOG=warn "$pm" bootstrap --data-dir "$out/data" --genesis-key "$out/genesis.key" --nickname "Bench Genesis" >/dev/null

watch=()
urls=()
if [[ $deployment == embedded ]]; then
  start serve
  watch+=(--watch-pid "$started_pid")
  urls+=("$started_url/teleferic")
else
  start reader
  export PM_ROLES__READER_URL=$started_url
  watch+=(--watch-pid "$started_pid")
  copies=1
  [[ $deployment == scaled ]] && copies=2
  for _ in $(seq $copies); do
    start authorizer
    watch+=(--watch-pid "$started_pid")
    PM_ROLES__AUTHORIZER_URL=$started_url start teleferic
    watch+=(--watch-pid "$started_pid")
    urls+=("$started_url/teleferic")
    start writer
    watch+=(--watch-pid "$started_pid")
  done
fi

if [[ $deployment != embedded ]]; then
  # The servers too: their memory, and their CPU for each envelope.
  for server in rabbitmq elasticsearch hbase-master hbase-thrift; do
    if pid=$(scripts/services.sh pid "$server" 2>/dev/null); then watch+=(--watch-pid "$pid"); fi
  done
fi
also=()
for url in "${urls[@]:1}"; do also+=(--also-url "$url"); done
if [[ $deployment != embedded ]]; then
  for url in "${role_urls[@]}"; do watch+=(--watch-metrics "$url"); done
fi
echo "bench: $deployment, $messages messages, concurrency $concurrency; logs and figures in $out"
client=$(realpath "${PM_CLIENT_BIN:-$pm}")
# The client shares the cores too, so it watches itself: exec gives it the
# subshell's pid.
(exec "$client" bench --url "${urls[0]}" "${also[@]}" --genesis-key "$out/genesis.key" \
  --messages "$messages" --concurrency "$concurrency" --ceilings --json "$out/bench.json" "${watch[@]}" \
  --watch-pid "$BASHPID") |
  tee "$out/bench.txt"
