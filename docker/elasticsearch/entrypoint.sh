#!/bin/bash
# pm-local/elasticsearch: every environment variable whose name contains a
# dot (and only lower-case letters, digits, dots and underscores) is passed
# as a setting (-E name=value), as the public image does; then Elasticsearch
# runs in the foreground on Debian's JDK.
set -euo pipefail
java=$(readlink -f "$(command -v java)")
export ES_JAVA_HOME=${ES_JAVA_HOME:-$(dirname "$(dirname "$java")")}
unset JAVA_HOME
settings=()
while IFS= read -r -d '' entry; do
  name=${entry%%=*}
  if [[ $name =~ ^[a-z0-9_]+(\.[a-z0-9_]+)+$ ]]; then
    settings+=(-E "$name=${entry#*=}")
  fi
done < <(env -0)
exec /usr/share/elasticsearch/bin/elasticsearch "${settings[@]}" "$@"
