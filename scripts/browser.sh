#!/usr/bin/env bash
# Installs the headless browser the explorer's browser test drives
# (tests/explorer.rs): Debian's chromium and chromium-driver. Idempotent:
# does nothing when both are on the PATH. Installs only as root; otherwise
# it says what is missing. Either way the test fails under PM_REQUIRE_SERVICES=1
# when the browser is missing.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "browser.sh: ${missing[*]} missing; install as root: apt-get install ${missing[*]}" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser.sh: ${missing[*]} missing and there is no apt-get here" >&2
  exit 0
fi
echo "browser.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A failed install is reported by the test itself (it names what is missing).
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
  echo "browser.sh: installing ${missing[*]} failed" >&2
fi
