#!/bin/bash
# pm-local/hbase: the standalone master and the Thrift v1 server, two JVMs in
# one container. SIGTERM stops both (the master flushes its regions); if
# either exits on its own, the other is stopped and the container exits with
# its status, so the orchestrator restarts the whole.
set -uo pipefail
mkdir -p /hbase-data/hbase /hbase-data/tmp /hbase-data/zookeeper
# The options both JVMs share (docker/hbase/jvm.options, as scripts/services.sh).
mapfile -t opts < <(grep -v -e '^#' -e '^$' /opt/hbase/conf/jvm.options)
opts+=(
  -Djava.io.tmpdir=/hbase-data/tmp
  -Dlog4j2.configurationFile=file:/opt/hbase/conf/log4j2.properties
)
# Word splitting wanted: a space-separated list of extra JVM options.
# shellcheck disable=SC2206
opts+=(${PM_HBASE_JAVA_OPTS:-})
cp="/opt/hbase/conf:/opt/hbase/lib/*"

java -Xms128m -Xmx"${PM_HBASE_HEAP:-512m}" "${opts[@]}" -cp "$cp" \
  org.apache.hadoop.hbase.master.HMaster start &
master=$!
java -Xms64m -Xmx"${PM_HBASE_THRIFT_HEAP:-256m}" "${opts[@]}" -cp "$cp" \
  org.apache.hadoop.hbase.thrift.ThriftServer -threadpool -p 9090 start &
thrift=$!

stop() { kill -TERM "$thrift" "$master" 2>/dev/null; }
trap stop TERM INT
status=0
wait -n "$master" "$thrift" || status=$?
stop
wait "$thrift" 2>/dev/null
wait "$master" 2>/dev/null
exit "$status"
