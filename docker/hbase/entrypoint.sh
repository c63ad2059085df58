#!/bin/bash
# pm-local/hbase: the standalone master and the Thrift v1 server, two JVMs in
# one container. SIGTERM stops both (the master flushes its regions); if
# either exits on its own, the other is stopped and the container exits with
# its status, so the orchestrator restarts the whole.
set -uo pipefail
mkdir -p /hbase-data/hbase /hbase-data/tmp /hbase-data/zookeeper
# JDK 17: HBase and Hadoop reach into JDK internals (as scripts/services.sh).
opts=(
  --add-opens java.base/java.io=ALL-UNNAMED
  --add-opens java.base/java.nio=ALL-UNNAMED
  --add-opens java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens java.base/java.lang=ALL-UNNAMED
  --add-opens java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens java.base/java.util=ALL-UNNAMED
  --add-opens java.base/java.util.concurrent=ALL-UNNAMED
  --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
  --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
  -Dorg.apache.hbase.thirdparty.io.netty.tryReflectionSetAccessible=true
  -Djava.net.preferIPv4Stack=true
  -Djava.io.tmpdir=/hbase-data/tmp
  -Dlog4j2.configurationFile=file:/opt/hbase/conf/log4j2.properties
  -XX:+UseG1GC
  -XX:+ExitOnOutOfMemoryError
  -XX:TieredStopAtLevel=1
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
