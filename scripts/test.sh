#!/usr/bin/env bash
# The project's test command: starts RabbitMQ, Elasticsearch and HBase
# (installing what is missing; see scripts/services.sh), installs the
# headless browser of the explorer test (scripts/browser.sh) and the OpenSSL
# and Python `cryptography` the key tests open keys with, then builds and
# runs every test of the workspace. Tests that need a server fail, not skip, when
# they cannot reach it (PM_REQUIRE_SERVICES=1).
set -euo pipefail
cd "$(dirname "$0")/.."
export PM_REQUIRE_SERVICES="${PM_REQUIRE_SERVICES:-1}"
if [ "${PM_SKIP_SERVICES:-0}" != 1 ]; then
  scripts/services.sh start
fi
scripts/browser.sh
# tests/cli.rs opens pm's keys with OpenSSL and Python's `cryptography`:
# install Debian's packages when missing (root only; nothing when present).
if ! command -v openssl >/dev/null 2>&1 || ! python3 -c 'import cryptography' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssl python3 python3-cryptography >/dev/null
  else
    echo "test.sh: tests/cli.rs needs openssl and python3-cryptography (as root: apt-get install openssl python3-cryptography)" >&2
  fi
fi
cargo test --workspace --all-targets --locked "$@"

# Fuzzing (issue 8): every fuzz target for a few seconds, from its committed
# corpus (scripts/fuzz.sh: cargo-fuzz, no sanitizer; the first build takes a
# few minutes). `cargo test` above already replayed that corpus through the
# same properties (fuzzing/tests/corpus.rs). PM_FUZZ_SECONDS sets the seconds
# per target (default 5); PM_SKIP_FUZZ=1 skips it.
if [ "${PM_SKIP_FUZZ:-0}" != 1 ]; then
  scripts/fuzz.sh "${PM_FUZZ_SECONDS:-5}"
fi

# Fault runs (issue 8): a short one per deployment, with the pm binary just
# built; the distributed one restarts and stalls the servers started above and
# leaves them running. PM_SKIP_CHAOS=1 skips it.
if [ "${PM_SKIP_CHAOS:-0}" != 1 ]; then
  PM_CHAOS_PROFILE=debug PM_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/pm" scripts/chaos.sh all 20
fi

# Containers (issue 10): the images built here without a registry
# (scripts/images.sh), the swarm stack and the development file deployed and
# driven through their gateway (scripts/stack-test.sh). The images carry the
# pm binary `cargo test` has just built (stripped), unless PM_BINARY names
# another, so this step compiles nothing. PM_SKIP_CONTAINERS=1 skips it.
if [ "${PM_SKIP_CONTAINERS:-0}" != 1 ]; then
  PM_BINARY="${PM_BINARY:-${CARGO_TARGET_DIR:-$PWD/target}/debug/pm}" scripts/stack-test.sh all
fi
