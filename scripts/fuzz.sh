#!/usr/bin/env bash
# Coverage-guided fuzzing of every decoder of untrusted bytes (issue 8):
# builds the targets of fuzz/ with cargo-fuzz (installed if missing) and
# runs each for SECONDS (default 10), two at a time, starting from its
# corpus in fuzz/corpus/<target>/. New inputs go to a scratch copy, so the
# committed corpus changes only by hand (`fuzz/README.md`). Exits non-zero
# if any target crashes (a panic, a failed property, a timeout or running
# out of memory), after printing the crashing input's path under
# fuzz/artifacts/<target>/.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# Environment: PM_FUZZ_JOBS (targets run at once, default: the cores),
# PM_FUZZ_TARGET_DIR (build directory, default target/fuzz),
# PM_FUZZ_CODEGEN_UNITS (default 16: a faster build, slightly slower runs).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
seconds="${1:-10}"
shift || true
# cargo-fuzz needs nightly flags; the stable toolchain takes them with this.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${PM_FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}/fuzz}"
jobs="${PM_FUZZ_JOBS:-$(nproc)}"
if ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --locked
fi

cd fuzz
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
# No sanitizer (the code is safe Rust, and it halves the cost); debug
# assertions on, so integer overflow is a crash.
flags=(--sanitizer none --debug-assertions --target-dir "$CARGO_TARGET_DIR" --codegen-units "${PM_FUZZ_CODEGEN_UNITS:-16}")
started=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "fuzz: built ${#targets[@]} targets in $(( $(date +%s) - started )) s"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
run_one() {
  local target="$1" log="$scratch/$1.log"
  mkdir -p "$scratch/$target" "artifacts/$target"
  # The first corpus directory receives what the run finds; the committed
  # one is read only. -rss_limit_mb and -timeout make a blow-up a crash.
  if cargo fuzz run "${flags[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
      -artifact_prefix="artifacts/$target/" -print_final_stats=1 >"$log" 2>&1; then
    local runs
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    echo "fuzz: $target: ${runs:-?} executions in ${seconds} s, no crash"
  else
    echo "fuzz: $target CRASHED; its log:"
    grep -v '^#' "$log" | tail -40
    ls "artifacts/$target/" | sed "s|^|fuzz: crashing input: fuzz/artifacts/$target/|"
    return 1
  fi
}
export -f run_one
export scratch seconds
export flags_joined="${flags[*]}"
failed=0
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'flags=($flags_joined); run_one {}' || failed=1
echo "fuzz: ${#targets[@]} targets, $seconds s each, $(( $(date +%s) - started )) s in all"
exit "$failed"
