#!/usr/bin/env bash
# Fault runs (issue 8): floods a deployment with envelopes while killing,
# restarting and stalling its parts, then checks that every accepted envelope
# is stored exactly once, nothing refused is stored and no claim is left held
# without its message. Prints a table per fault; exits non-zero when anything
# was lost, duplicated, refused-then-stored or orphaned.
#
#   scripts/chaos.sh [embedded|distributed|all] [SECONDS]
#
# `distributed` drives the servers scripts/services.sh started (same
# environment: PM_SERVICES_DIR, PM_RABBITMQ_PORT, ...): it restarts RabbitMQ,
# stops the HBase Thrift server and stalls Elasticsearch and the broker, and
# leaves them all running. Do not run it while other tests use those servers.
# PM_BIN names the pm binary (default: one built here).
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
seconds=${2:-30}
# PM_CHAOS_PROFILE=debug builds the harness without optimisation (the test
# script does, with the pm binary `cargo test` built).
profile=${PM_CHAOS_PROFILE:-release}
flags=(--locked --example chaos)
[[ $profile == release ]] && flags+=(--release)
if [[ -z ${PM_BIN:-} ]]; then
  flags+=(--bin pm)
  export PM_BIN=${CARGO_TARGET_DIR:-target}/$profile/pm
fi
cargo build "${flags[@]}"
chaos=${CARGO_TARGET_DIR:-target}/$profile/examples/chaos
status=0
for deployment in embedded distributed; do
  [[ $which == all || $which == "$deployment" ]] || continue
  started=$(date +%s)
  "$chaos" "$deployment" --seconds "$seconds" || status=1
  echo "chaos: $deployment run took $(( $(date +%s) - started )) s"
done
if [[ $which != embedded ]]; then
  # Whatever the run did to the servers, leave them up for what follows.
  scripts/services.sh start >/dev/null
fi
exit "$status"
