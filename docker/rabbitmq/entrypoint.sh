#!/bin/bash
# pm-local/rabbitmq: RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS become the
# default user (created on the node's first boot only, as in the public image),
# then the broker runs in the foreground.
set -euo pipefail
defaults=/etc/rabbitmq/conf.d/10-default-user.conf
rm -f "$defaults"
if [[ -n ${RABBITMQ_DEFAULT_USER:-} || -n ${RABBITMQ_DEFAULT_PASS:-} ]]; then
  umask 077
  {
    [[ -n ${RABBITMQ_DEFAULT_USER:-} ]] && printf 'default_user = %s\n' "$RABBITMQ_DEFAULT_USER"
    [[ -n ${RABBITMQ_DEFAULT_PASS:-} ]] && printf 'default_pass = %s\n' "$RABBITMQ_DEFAULT_PASS"
  } >"$defaults"
fi
exec /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
