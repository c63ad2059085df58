#!/usr/bin/env bash
# The project's test command: builds and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
export PM_REQUIRE_SERVICES="${PM_REQUIRE_SERVICES:-1}"
cargo test --workspace --all-targets --locked "$@"
