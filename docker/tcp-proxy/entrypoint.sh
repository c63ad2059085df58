#!/bin/bash
# pm-local/tcp-proxy: writes an HAProxy configuration from LISTEN/TALK and
# the TIMEOUT_* variables, then runs HAProxy in the foreground.
set -euo pipefail
read -r -a listen <<<"$LISTEN"
read -r -a talk <<<"$TALK"
if (( ${#talk[@]} == 0 || ${#talk[@]} != ${#listen[@]} )); then
  echo "tcp-proxy: TALK must name one upstream per LISTEN address (LISTEN='$LISTEN', TALK='$TALK')" >&2
  exit 2
fi
cfg=$(mktemp /tmp/haproxy.XXXXXX.cfg)
{
  cat <<CFG
global
    log stdout format raw local0 info
    maxconn 4096

defaults
    mode tcp
    log global
    option tcplog
    timeout connect $TIMEOUT_CONNECT
    timeout client $TIMEOUT_CLIENT
    timeout server $TIMEOUT_SERVER
    timeout tunnel $TIMEOUT_TUNNEL

resolvers docker
    parse-resolv-conf
    hold valid 10s
    hold nx 2s
CFG
  for i in "${!listen[@]}"; do
    printf '\nlisten proxy%d\n    bind %s\n    server upstream%d %s resolvers docker init-addr last,libc,none\n' \
      "$i" "${listen[$i]}" "$i" "${talk[$i]}"
  done
} >"$cfg"
exec haproxy -W -db -f "$cfg"
