#!/usr/bin/env bash
# Development / test servers for Peer Mountain, all on 127.0.0.1 only:
#   rabbitmq       amqp://127.0.0.1:5672   (Debian's rabbitmq-server)
#   elasticsearch  http://127.0.0.1:9200   (8.x integ-test zip from Maven Central)
#   hbase          127.0.0.1:9090          (standalone HBase 2.x + Thrift v1 gateway,
#                                           jars from Maven Central via hbase/pom.xml)
#
# Usage: scripts/services.sh start|stop|status|rabbitmqctl [ARGS...]
#
#   start   install what is missing, start what is not running (a running
#           service is left alone), wait until every service is ready and
#           print one "name endpoint" line per service on stdout.
#   stop    stop what this script started (found by pid files under
#           PM_SERVICES_DIR): SIGTERM, wait, then SIGKILL.
#   status  one line per service: running/stopped and ready/not-ready.
#           Exit status 0 only if every selected service is ready.
#   rabbitmqctl ARGS  run rabbitmqctl against our node (right cookie/node name).
#
# Environment (all optional):
#   PM_SERVICES_DIR        data, logs, pid files, unpacked downloads (Maven's
#                          ~/.m2 caches jars). Default: /var/lib/pm-services as
#                          root, ~/.cache/pm-services otherwise. Nothing above
#                          it is ever chmod-ed: as root it must be reachable by
#                          PM_SERVICES_USER, so not under a private home.
#   PM_SERVICES            subset to act on (default "rabbitmq elasticsearch hbase")
#   PM_RABBITMQ_PORT       5672 (Erlang distribution port = this + 20000)
#   PM_RABBITMQ_NODENAME   rabbit@localhost (must differ per concurrent instance)
#   PM_ES_PORT             9200      PM_ES_TRANSPORT_PORT   9300
#   PM_HBASE_THRIFT_PORT   9090      PM_HBASE_ZK_PORT       2181
#   PM_HBASE_MASTER_PORT   16000     PM_HBASE_MASTER_INFO_PORT 16010
#   PM_HBASE_RS_PORT       16020
#   PM_ES_HEAP 512m  PM_HBASE_HEAP 1g  PM_HBASE_THRIFT_HEAP 384m
#   PM_ES_JAVA_OPTS / PM_HBASE_JAVA_OPTS   extra JVM options (appended)
#   PM_SERVICES_TIMEOUT    seconds to wait for readiness (default 300)
#   PM_SERVICES_USER       unprivileged user for Elasticsearch when run as root
#                          (default pmsvc, created if missing)
#
# On failure: one line "services.sh: <service>: <why> (log: <path>)" on
# stderr and a non-zero exit.  Progress messages go to stderr too, so stdout
# of `start` is only the endpoint lines.
#
# Earlier versions kept everything, as root too, under ~/.cache/pm-services
# and ran `chmod o+x` on the directories above it (/root included) so that
# the Elasticsearch user could reach it.  While servers started from there
# still run, start/stop/status keep using that directory (with a note);
# once they are stopped, the next start uses the new default and reuses the
# old downloads by hard link.  See scripts/README-services.md, "Moving from
# ~/.cache/pm-services".
set -euo pipefail

# ---------------------------------------------------------------------------
# Pinned versions.  Change here (and re-run `start`) to upgrade.
# ---------------------------------------------------------------------------
# Debian bookworm's package; if the archive no longer has this exact version
# (security update), the current candidate is installed with a warning.
readonly RABBITMQ_APT_VERSION="3.10.8-1.1+deb12u1"
# Newest 8.x on Maven Central that runs on JDK 17 (8.x targets Java 17).
readonly ES_VERSION="8.19.21"
# Plain 2.6.1 (Hadoop 2.10.2): the newest hbase-thrift our registry serves;
# see the comment in scripts/hbase/pom.xml for why not a -hadoop3 flavour.
readonly HBASE_VERSION="2.6.1"
readonly HBASE_LOG4J2_VERSION="2.17.2"   # what HBase 2.6.1 itself builds with
readonly HBASE_SLF4J_VERSION="1.7.33"
readonly MVN_DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
readonly MIN_JAVA=17

# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------
# Files we create must stay readable by the unprivileged service user even
# if the caller has a restrictive umask.
umask 022

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
readonly SCRIPT_DIR
readonly HBASE_POM="$SCRIPT_DIR/hbase/pom.xml"

# Where earlier versions kept everything, as root too.
readonly LEGACY_DIR="$HOME/.cache/pm-services"

# A server started from `dir` still runs: a pid file there names a live
# process whose command line mentions `dir`.
dir_has_running_servers() { # dir
  local f pid
  for f in "$1"/run/*.pid "$1"/elasticsearch/elasticsearch.pid; do
    [[ -s $f ]] || continue
    pid=$(tr -dc '0-9' <"$f")
    [[ -n $pid && -r /proc/$pid/cmdline ]] || continue
    grep -qF -- "$1" < <(tr '\0' '\n' <"/proc/$pid/cmdline") && return 0
  done
  return 1
}

if [[ -z ${PM_SERVICES_DIR:-} ]]; then
  if [[ $EUID -eq 0 ]]; then
    # Not under /root: the Elasticsearch user must reach it without any
    # permission above it being loosened.
    PM_SERVICES_DIR=/var/lib/pm-services
    if [[ -d $LEGACY_DIR ]] && dir_has_running_servers "$LEGACY_DIR"; then
      printf 'services.sh: using %s, where servers started by an earlier version still run; after `stop`, the next `start` moves to %s\n' \
        "$LEGACY_DIR" "$PM_SERVICES_DIR" >&2
      PM_SERVICES_DIR=$LEGACY_DIR
    fi
  else
    PM_SERVICES_DIR=$LEGACY_DIR
  fi
fi
mkdir -p "$PM_SERVICES_DIR"
D=$(cd "$PM_SERVICES_DIR" && pwd -P)   # absolute: it ends up in configs
readonly D
readonly CACHE="$D/cache" RUN="$D/run" LOGS="$D/logs"

readonly ALL_SERVICES="rabbitmq elasticsearch hbase"
SERVICES=${PM_SERVICES:-$ALL_SERVICES}

readonly RABBITMQ_PORT=${PM_RABBITMQ_PORT:-5672}
readonly RMQ_DIST_PORT=$((RABBITMQ_PORT + 20000))
readonly ES_PORT=${PM_ES_PORT:-9200}
readonly ES_TRANSPORT_PORT=${PM_ES_TRANSPORT_PORT:-9300}
readonly HBASE_THRIFT_PORT=${PM_HBASE_THRIFT_PORT:-9090}
readonly HBASE_ZK_PORT=${PM_HBASE_ZK_PORT:-2181}
readonly HBASE_MASTER_PORT=${PM_HBASE_MASTER_PORT:-16000}
readonly HBASE_MASTER_INFO_PORT=${PM_HBASE_MASTER_INFO_PORT:-16010}
readonly HBASE_RS_PORT=${PM_HBASE_RS_PORT:-16020}

readonly ES_HEAP=${PM_ES_HEAP:-512m}
readonly HBASE_HEAP=${PM_HBASE_HEAP:-1g}
readonly HBASE_THRIFT_HEAP=${PM_HBASE_THRIFT_HEAP:-384m}
# C1-only JIT: on 2 cores, four JVMs booting at once spend much of their
# time in the C2 compiler; C1 only cuts a cold start from ~55 s to ~32 s.
# Dev/test loads do not need C2's peak speed.  Extra options come last, so
# e.g. PM_ES_JAVA_OPTS=-XX:TieredStopAtLevel=4 turns C2 back on.
readonly JIT_OPTS="-XX:TieredStopAtLevel=1"
readonly ES_EXTRA_JAVA_OPTS=${PM_ES_JAVA_OPTS:-}
readonly HBASE_EXTRA_JAVA_OPTS=${PM_HBASE_JAVA_OPTS:-}
readonly TIMEOUT=${PM_SERVICES_TIMEOUT:-300}

# Elasticsearch refuses to run as root, so as root we run it as this user.
if [[ $EUID -eq 0 ]]; then
  SVC_USER=${PM_SERVICES_USER:-pmsvc}
else
  SVC_USER=$(id -un)
fi
readonly SVC_USER

# RabbitMQ
readonly RMQ_BIN=/usr/lib/rabbitmq/bin     # the real scripts, not Debian's su wrapper
readonly RMQ_DIR="$D/rabbitmq"
readonly RMQ_LOGDIR="$LOGS/rabbitmq"
readonly RMQ_PIDFILE="$RUN/rabbitmq.pid"
readonly RMQ_NODENAME=${PM_RABBITMQ_NODENAME:-rabbit@localhost}
readonly EPMD_PIDFILE="$RUN/epmd.pid"

# Elasticsearch
readonly ES_HOME="$CACHE/elasticsearch-$ES_VERSION"
readonly ES_DIR="$D/elasticsearch"
readonly ES_LOGDIR="$LOGS/elasticsearch"
readonly ES_PIDFILE="$ES_DIR/elasticsearch.pid"   # written by ES (as SVC_USER)
readonly ES_LOG="$ES_LOGDIR/pm-dev.log"            # <cluster.name>.log
readonly ES_LAUNCH_LOG="$LOGS/elasticsearch-launch.log"

# HBase
readonly HBASE_LIB="$CACHE/hbase-$HBASE_VERSION/lib"
readonly HBASE_STAMP="$CACHE/hbase-$HBASE_VERSION/.complete"
readonly HBASE_DIR="$D/hbase"
readonly HBASE_CONF="$HBASE_DIR/conf"
readonly HB_MASTER_PIDFILE="$RUN/hbase-master.pid"
readonly HB_THRIFT_PIDFILE="$RUN/hbase-thrift.pid"
readonly HB_MASTER_LOG="$LOGS/hbase-master.log"
readonly HB_THRIFT_LOG="$LOGS/hbase-thrift.log"

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
note() { printf 'services.sh: %s\n' "$*" >&2; }

# The single failure line the callers (CI, developers) look for.
fail() { # service why [log]
  local svc=$1 why=$2 log=${3:-}
  if [[ -n $log ]]; then
    printf 'services.sh: %s: %s (log: %s)\n' "$svc" "$why" "$log" >&2
  else
    printf 'services.sh: %s: %s\n' "$svc" "$why" >&2
  fi
  exit 1
}

# Files to remove however the script ends (e.g. a temporary policy-rc.d).
CLEANUP=()
cleanup() { local f; for f in "${CLEANUP[@]}"; do rm -rf -- "$f"; done; }
trap cleanup EXIT

now() { date +%s; }

# Last interesting line of a log, squeezed to one short line, so that a
# failure can be explained in the one-line error message.
log_reason() { # file
  local line=""
  if [[ -r $1 ]]; then
    line=$(grep -E 'ERROR|FATAL|Exception|[Ee]rror:|BOOT FAILED|refused|already in use' "$1" 2>/dev/null | tail -n 1 || true)
    [[ -n $line ]] || line=$(tail -n 1 "$1" 2>/dev/null || true)
  fi
  line=${line//$'\t'/ }
  printf '%s' "${line:0:240}"
}

# Something already listens on 127.0.0.1:port (bash's /dev/tcp, no extra tools).
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

require_free_ports() { # service port...
  local svc=$1 p
  shift
  for p in "$@"; do
    if port_in_use "$p"; then
      fail "$svc" "port 127.0.0.1:$p is already in use by a process this script did not start (see: ss -ltnp 'sport = :$p')"
    fi
  done
}

# Alive and not a zombie (PID 1 here may take a while to reap orphans).
alive() { # pid
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $st && ${st%% *} != Z ]]
}

read_pid() { # pidfile -> pid on stdout, or fail
  [[ -s $1 ]] || return 1
  local pid
  pid=$(tr -dc '0-9' <"$1")
  [[ -n $pid ]] || return 1
  printf '%s' "$pid"
}

# The pid in the file is alive AND is ours: every marker string appears in
# its command line or environment.  Guards against pid reuse after a reboot
# or a crash leaving a stale pid file behind.
pid_ours() { # pidfile marker...
  local pidfile=$1 pid m
  shift
  pid=$(read_pid "$pidfile") || return 1
  alive "$pid" || return 1
  for m in "$@"; do
    # Process substitution, not a pipe: with pipefail, `tr | grep -q` can
    # report failure when grep exits early and tr gets SIGPIPE.
    grep -qF -- "$m" < <(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline") && continue
    grep -qF -- "$m" < <(tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ") && continue
    return 1
  done
}

# Start a command fully detached (own session, stdio on a log file) and
# record its pid.  `exec` keeps the pid, so the pid file names the real
# server process.  Daemons must not keep the caller's stdout/stderr open,
# or `$(services.sh start)` and CI log pipes would never see EOF.
launch_bg() { # pidfile logfile cmd...
  local pidfile=$1 logfile=$2
  shift 2
  rm -f "$pidfile"
  # Working directory = logs: crash files (hs_err_pid*.log) must not land in
  # the caller's directory, i.e. usually the git checkout.
  # shellcheck disable=SC2016 # $$ and $@ are for the inner shell
  (cd "$LOGS" && exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@") \
    </dev/null >>"$logfile" 2>&1 9>&- &
  local _
  for _ in $(seq 50); do
    [[ -s $pidfile ]] && return 0
    sleep 0.1
  done
  return 1
}

# SIGTERM, wait up to `grace` seconds, then SIGKILL.
stop_pid() { # name pidfile grace marker...
  local name=$1 pidfile=$2 grace=$3 pid t
  shift 3
  if ! pid_ours "$pidfile" "$@"; then
    if [[ -e $pidfile ]]; then rm -f "$pidfile"; fi
    note "$name: not running"
    return 0
  fi
  pid=$(read_pid "$pidfile")
  note "$name: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  t=$(( $(now) + grace ))
  while alive "$pid" && (( $(now) < t )); do sleep 0.5; done
  if alive "$pid"; then
    note "$name: still alive after ${grace}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    t=$(( $(now) + 10 ))
    while alive "$pid" && (( $(now) < t )); do sleep 0.2; done
  fi
  rm -f "$pidfile"
}

# Prefix that runs a command as SVC_USER (setpriv execs: no extra process,
# no PAM session, unlike su/runuser).
as_svc_user() {
  AS_SVC_USER=()
  if [[ $EUID -eq 0 && $SVC_USER != root ]]; then
    AS_SVC_USER=(setpriv --reuid="$SVC_USER" --regid="$SVC_USER" --init-groups)
  fi
}

# --------------------------- installers -----------------------------------
APT_UPDATED=0
apt_install() { # log pkg...
  local log=$1
  shift
  [[ $EUID -eq 0 ]] || return 1
  if (( ! APT_UPDATED )); then
    apt-get update -q >>"$log" 2>&1 || return 1
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >>"$log" 2>&1
}

JAVA_HOME_DIR=""
ensure_java() { # service
  local svc=$1 java ver
  if [[ -n ${JAVA_HOME:-} && -x ${JAVA_HOME}/bin/java ]]; then
    java="$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    java=$(readlink -f "$(command -v java)")
  else
    note "$svc: no java found, installing openjdk-17-jre-headless"
    apt_install "$LOGS/install-java.log" openjdk-17-jre-headless \
      || fail "$svc" "java is missing and could not be installed (need root for apt-get)" "$LOGS/install-java.log"
    java=$(readlink -f "$(command -v java)")
  fi
  JAVA_HOME_DIR=$(dirname "$(dirname "$java")")
  ver=$("$java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  ver=${ver#1.}
  if [[ -z $ver ]] || (( ${ver%%.*} < MIN_JAVA )); then
    fail "$svc" "java $MIN_JAVA+ required, $java is version '${ver:-unknown}'"
  fi
}

ensure_mvn() { # service
  command -v mvn >/dev/null 2>&1 && return 0
  note "$1: no mvn found, installing maven"
  apt_install "$LOGS/install-maven.log" maven \
    || fail "$1" "mvn is missing and could not be installed (need root for apt-get)" "$LOGS/install-maven.log"
}

ensure_svc_user() {
  [[ $EUID -eq 0 ]] || return 0
  id -u "$SVC_USER" >/dev/null 2>&1 && return 0
  note "creating system user $SVC_USER to run elasticsearch (it refuses to run as root)"
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SVC_USER" \
    || fail elasticsearch "could not create system user $SVC_USER"
}

# As root, Elasticsearch runs as SVC_USER, which must reach its files
# through every directory above them.  This script never loosens a
# permission above its own directory (earlier versions ran `chmod o+x` on
# /root): it stops with the reason instead.
require_reachable() { # dir
  [[ $EUID -eq 0 && $SVC_USER != root ]] || return 0
  local path=$1 cur="" part
  local -a parts
  IFS=/ read -r -a parts <<<"${path#/}"
  for part in "${parts[@]}"; do
    cur="$cur/$part"
    if ! setpriv --reuid="$SVC_USER" --regid="$SVC_USER" --init-groups test -x "$cur" 2>/dev/null; then
      fail elasticsearch "user $SVC_USER cannot reach $path: $cur is not searchable by it; this script does not change permissions above PM_SERVICES_DIR, so choose a PM_SERVICES_DIR outside private home directories (default /var/lib/pm-services)"
    fi
  done
}

# Hard-links (or copies) an unpacked download from the earlier default
# directory instead of downloading it again.  The old tree stays usable.
reuse_legacy_download() { # target (a path under $CACHE)
  local target=$1 source
  source="$LEGACY_DIR/cache/${target#"$CACHE"/}"
  [[ $D != "$LEGACY_DIR" && -d $source && ! -e $target ]] || return 1
  note "reusing $source from the earlier cache directory"
  mkdir -p "$(dirname "$target")"
  cp -al "$source" "$target" 2>/dev/null || cp -a "$source" "$target"
}

# ---------------------------------------------------------------------------
# RabbitMQ
# ---------------------------------------------------------------------------
# Everything RabbitMQ/Erlang reads comes from these variables, so neither
# /etc/rabbitmq nor /var/lib/rabbitmq of the Debian package is used, and the
# node (and the CLI's own temporary node) listens on loopback only.
rmq_env() { # cmd...
  env HOME="$RMQ_DIR/home" \
    RABBITMQ_NODENAME="$RMQ_NODENAME" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$RABBITMQ_PORT" \
    RABBITMQ_DIST_PORT="$RMQ_DIST_PORT" \
    RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia" \
    RABBITMQ_LOG_BASE="$RMQ_LOGDIR" \
    RABBITMQ_PID_FILE="$RMQ_PIDFILE" \
    RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf" \
    RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_DIR/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    ERL_EPMD_ADDRESS=127.0.0.1 \
    ERL_CRASH_DUMP="$RMQ_LOGDIR/erl_crash.dump" \
    "$@"
}

rmq_running() { pid_ours "$RMQ_PIDFILE" "$RMQ_DIR"; }

# AMQP 0-9-1 protocol header in, Connection.Start frame (type 1, channel 0)
# out: the broker is really serving AMQP, not just holding the port.
rmq_ready() {
  local reply
  # shellcheck disable=SC2016 # $0/$1 are for the inner shell
  reply=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
    printf "AMQP\x00\x00\x09\x01" >&3
    head -c 3 <&3 | od -An -tx1' "$RABBITMQ_PORT" 2>/dev/null) || return 1
  [[ ${reply//[[:space:]]/} == 010000 ]]
}

rmq_install() {
  [[ -x $RMQ_BIN/rabbitmq-server ]] && return 0
  [[ $EUID -eq 0 ]] || fail rabbitmq "rabbitmq-server is not installed and we are not root (run: sudo apt-get install rabbitmq-server)"
  local log="$LOGS/install-rabbitmq.log"
  note "rabbitmq: installing Debian package rabbitmq-server=$RABBITMQ_APT_VERSION"
  # No systemd here, and on machines that have it we still do not want the
  # package's own broker on 0.0.0.0:5672: forbid service starts during the
  # install the Debian way (policy-rc.d exit 101), if nothing else does.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# temporary, from peer-mountain scripts/services.sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    CLEANUP+=(/usr/sbin/policy-rc.d)
  fi
  if ! apt_install "$log" "rabbitmq-server=$RABBITMQ_APT_VERSION"; then
    note "rabbitmq: pinned version $RABBITMQ_APT_VERSION not available, installing the current candidate"
    apt_install "$log" rabbitmq-server || fail rabbitmq "apt-get install rabbitmq-server failed" "$log"
  fi
  [[ -x $RMQ_BIN/rabbitmq-server ]] || fail rabbitmq "rabbitmq-server installed but $RMQ_BIN/rabbitmq-server is missing" "$log"
}

# epmd (Erlang port mapper) would otherwise be auto-started by the node and
# outlive it; starting it ourselves gives it a pid file so `stop` can end it.
epmd_ensure() {
  epmd -names >/dev/null 2>&1 && return 0   # one is running already: share it
  launch_bg "$EPMD_PIDFILE" "$LOGS/epmd.log" epmd -address 127.0.0.1 \
    || fail rabbitmq "could not start epmd" "$LOGS/epmd.log"
  local _
  for _ in $(seq 50); do
    epmd -names >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail rabbitmq "epmd did not come up" "$LOGS/epmd.log"
}

rmq_launch() {
  local launch_log="$LOGS/rabbitmq-launch.log"
  require_free_ports rabbitmq "$RABBITMQ_PORT" "$RMQ_DIST_PORT"
  mkdir -p "$RMQ_DIR/home" "$RMQ_DIR/mnesia" "$RMQ_LOGDIR"
  : >"$RMQ_DIR/rabbitmq-env.conf"
  # Plugins off (the management UI is not needed and costs startup time).
  echo '[].' >"$RMQ_DIR/enabled_plugins"
  cat >"$RMQ_DIR/rabbitmq.conf" <<EOF
# Generated by scripts/services.sh; overwritten at every start.
# guest/guest is allowed, but only over loopback (the default).
loopback_users.guest = true
log.console = false
log.file.level = info
EOF
  epmd_ensure
  note "rabbitmq: starting on 127.0.0.1:$RABBITMQ_PORT"
  rm -f "$RMQ_PIDFILE" "$RMQ_LOGDIR/erl_crash.dump"
  # -detached: the Erlang VM daemonizes itself; the node writes RMQ_PIDFILE.
  # A detached node's early errors go nowhere but erl_crash.dump.
  (cd "$RMQ_DIR" && rmq_env "$RMQ_BIN/rabbitmq-server" -detached) </dev/null >"$launch_log" 2>&1 9>&- \
    || fail rabbitmq "rabbitmq-server -detached failed: $(log_reason "$launch_log")" "$launch_log"
}

rmq_wait() { # deadline
  local deadline=$1 t0 log="$RMQ_LOGDIR/$RMQ_NODENAME.log" dump="$RMQ_LOGDIR/erl_crash.dump"
  t0=$(now)
  while (( $(now) < deadline )); do
    # A detached node that dies leaves only erl_crash.dump; its "Slogan"
    # line is the reason.  Checked first: rabbitmqctl can be slow to fail.
    if [[ -s $dump ]] && ! rmq_running; then
      sleep 1   # let the VM finish writing the dump
      fail rabbitmq "node exited during startup: $(grep -m1 '^Slogan:' "$dump" | cut -c1-240)" "$dump"
    fi
    # await_startup fails at once while the node is not registered yet,
    # and blocks (bounded) while it boots.
    if rmq_env "$RMQ_BIN/rabbitmqctl" -q await_startup --timeout 20 >/dev/null 2>&1 && rmq_ready; then
      return 0
    fi
    if (( $(now) - t0 > 10 )) && ! rmq_running && ! pgrep -f -- "beam.*$RMQ_DIR/home" >/dev/null; then
      fail rabbitmq "node exited during startup: $(log_reason "$log")" "$log"
    fi
    sleep 1
  done
  fail rabbitmq "not ready after ${TIMEOUT}s: $(log_reason "$log")" "$log"
}

rmq_stop() {
  stop_pid rabbitmq "$RMQ_PIDFILE" 60 "$RMQ_DIR"
  # epmd only if we started it and no node still needs it.
  if pid_ours "$EPMD_PIDFILE" epmd; then
    if grep -q '^name ' < <(epmd -names 2>/dev/null); then
      note "epmd: other Erlang nodes still registered, leaving it running"
    else
      stop_pid epmd "$EPMD_PIDFILE" 10 epmd
    fi
  fi
}

# ---------------------------------------------------------------------------
# Elasticsearch
# ---------------------------------------------------------------------------
es_running() { pid_ours "$ES_PIDFILE" "$ES_HOME"; }

es_ready() {
  local body
  body=$(curl -fsS --max-time 5 "http://127.0.0.1:$ES_PORT/_cluster/health" 2>/dev/null) || return 1
  [[ $body =~ \"status\":\"(green|yellow)\" ]]
}

es_install() {
  ensure_java elasticsearch
  ensure_svc_user
  [[ -x $ES_HOME/bin/elasticsearch ]] && return 0
  reuse_legacy_download "$ES_HOME" && [[ -x $ES_HOME/bin/elasticsearch ]] && return 0
  ensure_mvn elasticsearch
  local log="$LOGS/install-elasticsearch.log" dl="$CACHE/downloads" tmp
  note "elasticsearch: downloading $ES_VERSION (integ-test-zip) with maven"
  mkdir -p "$dl"
  # The integ-test zip is the only ES server distribution on Maven Central:
  # no bundled JDK, and only a few modules (see README-services.md).
  (cd "$dl" && mvn -B -q "$MVN_DEPENDENCY_PLUGIN:copy" \
      -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip" \
      -DoutputDirectory="$dl") >"$log" 2>&1 \
    || fail elasticsearch "maven download of elasticsearch $ES_VERSION failed: $(log_reason "$log")" "$log"
  tmp=$(mktemp -d "$CACHE/.es-unzip.XXXXXX")
  CLEANUP+=("$tmp")
  unzip -q "$dl/elasticsearch-$ES_VERSION.zip" -d "$tmp" >>"$log" 2>&1 \
    || fail elasticsearch "unzip of elasticsearch-$ES_VERSION.zip failed" "$log"
  chmod 755 "$tmp"
  # Move into place only when complete, so an interrupted run is retried.
  mv "$tmp/elasticsearch-$ES_VERSION" "$ES_HOME"
  rm -f "$dl/elasticsearch-$ES_VERSION.zip"   # ~/.m2 keeps a copy
}

ES_LAUNCHER_PID=""
es_launch() {
  require_free_ports elasticsearch "$ES_PORT" "$ES_TRANSPORT_PORT"
  mkdir -p "$ES_DIR/data" "$ES_DIR/tmp" "$ES_LOGDIR"
  if [[ ! -f $ES_DIR/config/jvm.options ]]; then
    rm -rf "$ES_DIR/config"
    cp -r "$ES_HOME/config" "$ES_DIR/config"
  fi
  # Written at every start so that port/heap overrides take effect.
  # - discovery.type=single-node: no cluster bootstrap, and bootstrap checks
  #   (vm.max_map_count, file descriptors) are only warnings here.
  # - xpack.security.enabled=false: the integ-test zip does ship the security
  #   module; without this it auto-generates TLS + passwords (HTTPS, 401).
  # - disk threshold off: a nearly full dev disk must not make indices
  #   read-only in the middle of a test run.
  # - destructive_requires_name=false: tests may `DELETE /pm-test-*`.
  cat >"$ES_DIR/config/elasticsearch.yml" <<EOF
# Generated by scripts/services.sh; overwritten at every start.
cluster.name: pm-dev
node.name: pm-dev-1
discovery.type: single-node
network.host: 127.0.0.1
http.port: $ES_PORT
transport.port: $ES_TRANSPORT_PORT
path.data: $ES_DIR/data
path.logs: $ES_LOGDIR
xpack.security.enabled: false
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
EOF
  if [[ $EUID -eq 0 && $SVC_USER != root ]]; then
    chown -R "$SVC_USER:" "$ES_DIR" "$ES_LOGDIR"
    require_reachable "$ES_HOME"
    require_reachable "$ES_DIR"
    require_reachable "$ES_LOGDIR"
  fi
  note "elasticsearch: starting on 127.0.0.1:$ES_PORT (heap $ES_HEAP, user $SVC_USER)"
  rm -f "$ES_PIDFILE"
  : >"$ES_LAUNCH_LOG"
  # `-d` daemonizes after the node has started; run the launcher in the
  # background so HBase/RabbitMQ boot in parallel.  ES writes its pid file.
  as_svc_user
  (
    cd "$ES_LOGDIR"
    exec setsid env -u JAVA_HOME \
      ES_JAVA_HOME="$JAVA_HOME_DIR" ES_PATH_CONF="$ES_DIR/config" ES_TMPDIR="$ES_DIR/tmp" \
      ES_JAVA_OPTS="-Xms$ES_HEAP -Xmx$ES_HEAP $JIT_OPTS $ES_EXTRA_JAVA_OPTS" HOME="$ES_DIR" \
      "${AS_SVC_USER[@]}" "$ES_HOME/bin/elasticsearch" -d -p "$ES_PIDFILE"
  ) </dev/null >>"$ES_LAUNCH_LOG" 2>&1 9>&- &
  ES_LAUNCHER_PID=$!
}

es_wait() { # deadline
  local deadline=$1 rc
  while (( $(now) < deadline )); do
    es_ready && return 0
    # The launcher exits right after daemonizing; a non-zero exit is a
    # failed start (bad setting, port taken, JVM problem).
    if [[ -n $ES_LAUNCHER_PID ]] && ! kill -0 "$ES_LAUNCHER_PID" 2>/dev/null; then
      rc=0
      wait "$ES_LAUNCHER_PID" || rc=$?
      ES_LAUNCHER_PID=""
      if (( rc != 0 )); then
        fail elasticsearch "launcher exited with status $rc: $(log_reason "$ES_LAUNCH_LOG")" "$ES_LAUNCH_LOG"
      fi
    fi
    if [[ -z $ES_LAUNCHER_PID ]] && ! es_running; then
      fail elasticsearch "node is not running: $(log_reason "$ES_LOG")" "$ES_LOG"
    fi
    sleep 1
  done
  fail elasticsearch "not ready (cluster health not green/yellow) after ${TIMEOUT}s" "$ES_LOG"
}

es_stop() { stop_pid elasticsearch "$ES_PIDFILE" 60 "$ES_HOME"; }

# ---------------------------------------------------------------------------
# HBase (standalone master with in-JVM regionserver + ZooKeeper) + Thrift v1
# ---------------------------------------------------------------------------
# The options both HBase JVMs share, with the image (docker/hbase/jvm.options).
mapfile -t HBASE_JVM_OPTS < <(grep -v -e '^#' -e '^$' "$SCRIPT_DIR/../docker/hbase/jvm.options")
HBASE_JVM_OPTS+=(
  -Djava.io.tmpdir="$HBASE_DIR/tmp"
  -Dlog4j2.configurationFile="file:$HBASE_CONF/log4j2.properties"
  -XX:ErrorFile="$LOGS/hs_err_pid%p.log"
)
# Word splitting wanted: a space-separated list of JVM options.
# shellcheck disable=SC2206
HBASE_JVM_OPTS+=($HBASE_EXTRA_JAVA_OPTS)

hb_master_running() { pid_ours "$HB_MASTER_PIDFILE" "$HBASE_CONF" org.apache.hadoop.hbase.master.HMaster; }
hb_thrift_running() { pid_ours "$HB_THRIFT_PIDFILE" "$HBASE_CONF" org.apache.hadoop.hbase.thrift.ThriftServer; }
hbase_running() { hb_master_running && hb_thrift_running; }

# A real Thrift v1 call, getTableNames(), in TBinaryProtocol over a plain
# (buffered, unframed) socket.  The reply header is 25 bytes; the next field
# header is 0f 00 00 (field 0 = success, a list) when HBase answered, and
# 0c 00 01 (IOError) when the master is not usable.  This proves the whole
# path client -> thrift -> master works, not just that a port is open.
hbase_ready() {
  local reply
  # shellcheck disable=SC2016 # $0 is for the inner shell
  reply=$(timeout 15 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
    printf "\x80\x01\x00\x01\x00\x00\x00\x0dgetTableNames\x00\x00\x00\x00\x00" >&3
    head -c 28 <&3 | od -An -tx1' "$HBASE_THRIFT_PORT" 2>/dev/null) || return 1
  reply=${reply//[[:space:]]/}
  [[ ${reply:0:16} == 800100020000000d && ${reply:50:6} == 0f0000 ]]
}

hbase_install() {
  ensure_java hbase
  # The stamp ties the jar set to the versions and to the pom's content, so
  # editing either re-resolves; otherwise no maven call at all (fast reruns).
  local want have="" log="$LOGS/install-hbase.log" tmp
  want="$HBASE_VERSION $HBASE_LOG4J2_VERSION $HBASE_SLF4J_VERSION $(sha256sum "$HBASE_POM" | cut -d' ' -f1)"
  reuse_legacy_download "$CACHE/hbase-$HBASE_VERSION" || true
  [[ -f $HBASE_STAMP ]] && have=$(cat "$HBASE_STAMP")
  [[ $have == "$want" && -f $HBASE_LIB/hbase-thrift-$HBASE_VERSION.jar ]] && return 0
  ensure_mvn hbase
  note "hbase: resolving HBase $HBASE_VERSION jars with maven ($HBASE_POM)"
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/.hbase-lib.XXXXXX")
  CLEANUP+=("$tmp")
  mvn -B -q -f "$HBASE_POM" \
      -Dhbase.version="$HBASE_VERSION" \
      -Dlog4j2.version="$HBASE_LOG4J2_VERSION" \
      -Dslf4j.version="$HBASE_SLF4J_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/lib" >"$log" 2>&1 \
    || fail hbase "maven could not resolve the HBase $HBASE_VERSION jars: $(log_reason "$log")" "$log"
  rm -rf "$CACHE/hbase-$HBASE_VERSION"
  mkdir -p "$CACHE/hbase-$HBASE_VERSION"
  mv "$tmp/lib" "$HBASE_LIB"
  printf '%s\n' "$want" >"$HBASE_STAMP"
}

hbase_write_conf() {
  mkdir -p "$HBASE_CONF" "$HBASE_DIR/data" "$HBASE_DIR/zk" "$HBASE_DIR/tmp"
  # Standalone: HMaster also runs one regionserver and a ZooKeeper server in
  # its own JVM; data lives on the local filesystem.
  cat >"$HBASE_CONF/hbase-site.xml" <<EOF
<?xml version="1.0"?>
<!-- Generated by scripts/services.sh; overwritten at every start. -->
<configuration>
  <property><name>hbase.cluster.distributed</name><value>false</value></property>
  <property><name>hbase.rootdir</name><value>file://$HBASE_DIR/data</value></property>
  <property><name>hbase.tmp.dir</name><value>$HBASE_DIR/tmp</value></property>
  <property><name>hbase.zookeeper.property.dataDir</name><value>$HBASE_DIR/zk</value></property>
  <property><name>hbase.zookeeper.quorum</name><value>127.0.0.1</value></property>
  <property><name>hbase.zookeeper.property.clientPort</name><value>$HBASE_ZK_PORT</value></property>
  <!-- The local filesystem has no hflush/hsync; without this the WAL refuses to start. -->
  <property><name>hbase.unsafe.stream.capability.enforce</name><value>false</value></property>
  <!-- Loopback only. -->
  <property><name>hbase.master.ipc.address</name><value>127.0.0.1</value></property>
  <property><name>hbase.regionserver.ipc.address</name><value>127.0.0.1</value></property>
  <property><name>hbase.master.info.bindAddress</name><value>127.0.0.1</value></property>
  <property><name>hbase.regionserver.info.bindAddress</name><value>127.0.0.1</value></property>
  <property><name>hbase.thrift.info.bindAddress</name><value>127.0.0.1</value></property>
  <property><name>hbase.master.port</name><value>$HBASE_MASTER_PORT</value></property>
  <property><name>hbase.master.info.port</name><value>$HBASE_MASTER_INFO_PORT</value></property>
  <property><name>hbase.regionserver.port</name><value>$HBASE_RS_PORT</value></property>
  <!-- Fewer ports: no regionserver or thrift web UI (master UI stays on 16010). -->
  <property><name>hbase.regionserver.info.port</name><value>-1</value></property>
  <property><name>hbase.thrift.info.port</name><value>-1</value></property>
  <!-- Thrift v1 wire format the Rust client must use: plain (buffered,
       unframed) transport, binary protocol, thread-pool server. -->
  <property><name>hbase.regionserver.thrift.framed</name><value>false</value></property>
  <property><name>hbase.regionserver.thrift.compact</name><value>false</value></property>
  <property><name>hbase.regionserver.thrift.http</name><value>false</value></property>
</configuration>
EOF
  # Plain console logging into the per-daemon log file; Hadoop/ZooKeeper
  # chatter at WARN.
  cat >"$HBASE_CONF/log4j2.properties" <<'EOF'
# Generated by scripts/services.sh; overwritten at every start.
status = warn
dest = err
name = PMServices
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_OUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{ISO8601} %-5p [%t] %c{2}: %.1000m%n
rootLogger = INFO,console
logger.zookeeper.name = org.apache.zookeeper
logger.zookeeper.level = WARN
logger.hadoop.name = org.apache.hadoop
logger.hadoop.level = WARN
logger.hbase.name = org.apache.hadoop.hbase
logger.hbase.level = INFO
EOF
}

rotate_log() { if [[ -s $1 ]]; then mv -f "$1" "$1.1"; fi; }

HB_LAUNCHED_MASTER=0
hbase_launch() {
  hbase_write_conf
  local java="$JAVA_HOME_DIR/bin/java" cp="$HBASE_CONF:$HBASE_LIB/*"
  if ! hb_master_running; then
    require_free_ports hbase "$HBASE_ZK_PORT" "$HBASE_MASTER_PORT" "$HBASE_MASTER_INFO_PORT" "$HBASE_RS_PORT"
    rotate_log "$HB_MASTER_LOG"
    note "hbase: starting standalone master (ZooKeeper 127.0.0.1:$HBASE_ZK_PORT, heap $HBASE_HEAP)"
    launch_bg "$HB_MASTER_PIDFILE" "$HB_MASTER_LOG" \
      "$java" -Xms256m -Xmx"$HBASE_HEAP" "${HBASE_JVM_OPTS[@]}" -cp "$cp" \
      org.apache.hadoop.hbase.master.HMaster start \
      || fail hbase "could not launch the HBase master" "$HB_MASTER_LOG"
    HB_LAUNCHED_MASTER=1
  fi
  if ! hb_thrift_running; then
    require_free_ports hbase "$HBASE_THRIFT_PORT"
    rotate_log "$HB_THRIFT_LOG"
    note "hbase: starting Thrift v1 server on 127.0.0.1:$HBASE_THRIFT_PORT (heap $HBASE_THRIFT_HEAP)"
    launch_bg "$HB_THRIFT_PIDFILE" "$HB_THRIFT_LOG" \
      "$java" -Xms64m -Xmx"$HBASE_THRIFT_HEAP" "${HBASE_JVM_OPTS[@]}" -cp "$cp" \
      org.apache.hadoop.hbase.thrift.ThriftServer -threadpool -b 127.0.0.1 -p "$HBASE_THRIFT_PORT" start \
      || fail hbase "could not launch the HBase Thrift server" "$HB_THRIFT_LOG"
  fi
}

hbase_wait() { # deadline
  local deadline=$1
  # Phase 1 (fresh master only): wait for the master to finish initializing
  # (meta + namespace online) before sending Thrift calls, which would
  # otherwise sit in the client's retry loop.
  if (( HB_LAUNCHED_MASTER )); then
    while ! grep -q 'Master has completed initialization' "$HB_MASTER_LOG" 2>/dev/null; do
      hb_master_running || fail hbase "master exited during startup: $(log_reason "$HB_MASTER_LOG")" "$HB_MASTER_LOG"
      (( $(now) < deadline )) || fail hbase "master not initialized after ${TIMEOUT}s: $(log_reason "$HB_MASTER_LOG")" "$HB_MASTER_LOG"
      sleep 1
    done
  fi
  # Phase 2: end-to-end Thrift call.
  while (( $(now) < deadline )); do
    hbase_ready && return 0
    hb_master_running || fail hbase "master is not running: $(log_reason "$HB_MASTER_LOG")" "$HB_MASTER_LOG"
    hb_thrift_running || fail hbase "thrift server is not running: $(log_reason "$HB_THRIFT_LOG")" "$HB_THRIFT_LOG"
    sleep 1
  done
  fail hbase "thrift getTableNames did not succeed within ${TIMEOUT}s" "$HB_THRIFT_LOG"
}

hbase_stop() {
  stop_pid hbase-thrift "$HB_THRIFT_PIDFILE" 30 "$HBASE_CONF" org.apache.hadoop.hbase.thrift.ThriftServer
  # SIGTERM runs HBase's shutdown hook: regions are closed and flushed.
  stop_pid hbase-master "$HB_MASTER_PIDFILE" 90 "$HBASE_CONF" org.apache.hadoop.hbase.master.HMaster
}

# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------
selected() { [[ " $SERVICES " == *" $1 "* ]]; }

endpoint() {
  case $1 in
    rabbitmq) echo "rabbitmq amqp://127.0.0.1:$RABBITMQ_PORT" ;;
    elasticsearch) echo "elasticsearch http://127.0.0.1:$ES_PORT" ;;
    hbase) echo "hbase-thrift 127.0.0.1:$HBASE_THRIFT_PORT" ;;
  esac
}

# Serialize start/stop: two concurrent `start`s must not both launch.
# The lock is fd 9; every daemon is launched with 9>&- so that it does not
# inherit the descriptor and hold the lock for as long as it runs.
take_lock() {
  exec 9>"$D/.lock"
  flock -w 900 9 || fail services "another services.sh start/stop holds $D/.lock"
}

cmd_start() {
  take_lock
  local svc deadline
  local -a launched=()
  # 1. install what is missing (sequential: apt and maven caches are shared).
  for svc in $ALL_SERVICES; do
    selected "$svc" || continue
    case $svc in
      rabbitmq) rmq_running || rmq_install ;;
      elasticsearch) es_running || es_install ;;
      hbase) hbase_running || hbase_install ;;
    esac
  done
  # 2. launch what is not running, all at once so the JVMs boot in parallel.
  for svc in $ALL_SERVICES; do
    selected "$svc" || continue
    case $svc in
      rabbitmq) if rmq_running; then note "rabbitmq: already running"; else rmq_launch; launched+=("$svc"); fi ;;
      elasticsearch) if es_running; then note "elasticsearch: already running"; else es_launch; launched+=("$svc"); fi ;;
      hbase)
        if hbase_running; then
          note "hbase: already running"
        else
          ensure_java hbase   # sets JAVA_HOME_DIR also when only one daemon is missing
          hbase_launch
          launched+=("$svc")
        fi
        ;;
    esac
  done
  # 3. wait for readiness (already-running services too: they may still be
  #    booting from an earlier, interrupted start).
  deadline=$(( $(now) + TIMEOUT ))
  for svc in $ALL_SERVICES; do
    selected "$svc" || continue
    case $svc in
      rabbitmq) rmq_wait "$deadline" ;;
      elasticsearch) es_wait "$deadline" ;;
      hbase) hbase_wait "$deadline" ;;
    esac
    note "$svc: ready"
  done
  for svc in $ALL_SERVICES; do
    selected "$svc" && endpoint "$svc"
  done
  return 0
}

cmd_stop() {
  take_lock
  # Reverse dependency order does not matter here; HBase first because its
  # shutdown (flushes) takes the longest and we wait for each in turn.
  selected hbase && hbase_stop
  selected elasticsearch && es_stop
  selected rabbitmq && rmq_stop
  return 0
}

status_line() { # name running(0/1) ready(0/1) pid endpoint
  local run=stopped rdy=not-ready
  [[ $2 == 1 ]] && run=running
  [[ $3 == 1 ]] && rdy=ready
  printf '%-14s %-8s %-10s pid=%-8s %s\n' "$1" "$run" "$rdy" "${4:--}" "$5"
}

cmd_status() {
  local all_ok=0 run rdy pid
  if selected rabbitmq; then
    run=0 rdy=0 pid=""
    if rmq_running; then run=1; pid=$(read_pid "$RMQ_PIDFILE"); rmq_ready && rdy=1; fi
    status_line rabbitmq "$run" "$rdy" "$pid" "amqp://127.0.0.1:$RABBITMQ_PORT"
    (( rdy )) || all_ok=1
  fi
  if selected elasticsearch; then
    run=0 rdy=0 pid=""
    if es_running; then run=1; pid=$(read_pid "$ES_PIDFILE"); es_ready && rdy=1; fi
    status_line elasticsearch "$run" "$rdy" "$pid" "http://127.0.0.1:$ES_PORT"
    (( rdy )) || all_ok=1
  fi
  if selected hbase; then
    run=0 rdy=0 pid=""
    if hb_master_running; then run=1; pid=$(read_pid "$HB_MASTER_PIDFILE"); fi
    status_line hbase-master "$run" "$run" "$pid" "zk 127.0.0.1:$HBASE_ZK_PORT, ui http://127.0.0.1:$HBASE_MASTER_INFO_PORT"
    (( run )) || all_ok=1
    run=0 rdy=0 pid=""
    if hb_thrift_running; then run=1; pid=$(read_pid "$HB_THRIFT_PIDFILE"); hbase_ready && rdy=1; fi
    status_line hbase-thrift "$run" "$rdy" "$pid" "127.0.0.1:$HBASE_THRIFT_PORT"
    (( rdy )) || all_ok=1
  fi
  return "$all_ok"
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  local svc
  for svc in $SERVICES; do
    [[ " $ALL_SERVICES " == *" $svc "* ]] || fail services "unknown service '$svc' in PM_SERVICES (known: $ALL_SERVICES)"
  done
  mkdir -p "$CACHE" "$RUN" "$LOGS"
  case $cmd in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    rabbitmqctl) rmq_env "$RMQ_BIN/rabbitmqctl" -n "$RMQ_NODENAME" "$@" ;;
    pid) # pid rabbitmq|elasticsearch|hbase-master|hbase-thrift: the server's pid
      case ${1:-} in
        rabbitmq) read_pid "$RMQ_PIDFILE" ;;
        elasticsearch) read_pid "$ES_PIDFILE" ;;
        hbase-master) read_pid "$HB_MASTER_PIDFILE" ;;
        hbase-thrift) read_pid "$HB_THRIFT_PIDFILE" ;;
        *) fail services "pid: name rabbitmq, elasticsearch, hbase-master or hbase-thrift" ;;
      esac || fail services "pid: ${1:-} is not running"
      echo
      ;;
    *)
      echo "usage: $0 start|stop|status|pid NAME|rabbitmqctl [ARGS...]" >&2
      exit 2
      ;;
  esac
}

main "$@"
