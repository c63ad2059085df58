# Shared by scripts/images.sh and scripts/stack-test.sh (sourced, not run).
#
# Installs Debian's docker.io (and the packages a caller names) when missing,
# and starts dockerd when no daemon answers, waiting a bounded time for it.
#
# Environment:
#   PM_IMAGES_DIR        caches, logs and the dockerd pid file (default ~/.cache/pm-images)
#   PM_DOCKERD_TIMEOUT   seconds to wait for a daemon we start (default 60)

PM_IMAGES_DIR=${PM_IMAGES_DIR:-$HOME/.cache/pm-images}
mkdir -p "$PM_IMAGES_DIR/logs"
PM_IMAGES_DIR=$(cd "$PM_IMAGES_DIR" && pwd -P)

# The caller sets LIB_NAME (e.g. "images.sh") before sourcing.
note() { printf '%s: %s\n' "${LIB_NAME:-docker-lib}" "$*" >&2; }
die() { printf '%s: error: %s\n' "${LIB_NAME:-docker-lib}" "$*" >&2; exit 1; }
now() { date +%s; }

# apt-get install the named packages that dpkg does not know as installed.
# Waits for another apt/dpkg (bounded) instead of failing on its lock.
DOCKER_LIB_APT_UPDATED=0
ensure_packages() { # pkg...
  local missing=() p log="$PM_IMAGES_DIR/logs/apt.log"
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  (( ${#missing[@]} )) || return 0
  [[ $EUID -eq 0 ]] || die "missing packages ${missing[*]} and not root (run: sudo apt-get install ${missing[*]})"
  note "installing Debian packages: ${missing[*]}"
  if (( ! DOCKER_LIB_APT_UPDATED )); then
    apt-get -o DPkg::Lock::Timeout=600 update -q >>"$log" 2>&1 || die "apt-get update failed (log: $log)"
    DOCKER_LIB_APT_UPDATED=1
  fi
  # No service may start from a package's postinst (no init system here, and
  # the package's own dockerd would not be ours to stop).
  local policy_made=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_made=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
    "${missing[@]}" >>"$log" 2>&1 || rc=$?
  (( policy_made )) && rm -f /usr/sbin/policy-rc.d
  (( rc == 0 )) || die "apt-get install ${missing[*]} failed (log: $log)"
}

docker_ok() { timeout 20 docker info >/dev/null 2>&1; }

# True when pid file $1 names a live dockerd. Such a file may outlive its
# daemon, and the kernel reuses pids, so a live pid alone proves nothing.
names_dockerd() { [[ -f $1 && $(cat "/proc/$(cat "$1")/comm" 2>/dev/null) == dockerd ]]; }

# A daemon that answers `docker info`; started (as root) when none does.
ensure_dockerd() {
  if ! command -v docker >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1; then
    ensure_packages docker.io
  fi
  docker_ok && return 0
  [[ $EUID -eq 0 ]] || die "no docker daemon answers and we are not root to start one"
  local log="$PM_IMAGES_DIR/logs/dockerd.log" pidfile="$PM_IMAGES_DIR/dockerd.pid"
  local timeout=${PM_DOCKERD_TIMEOUT:-60} deadline pid
  if names_dockerd "$pidfile"; then
    note "dockerd (pid $(cat "$pidfile")) is starting; waiting for it"
  else
    note "starting dockerd (log: $log)"
    # A daemon that died without cleaning up leaves its own pid file, and
    # dockerd refuses to start while that file exists.
    names_dockerd /var/run/docker.pid || rm -f /var/run/docker.pid
    [[ -s $log ]] && mv -f "$log" "$log.1"
    setsid dockerd </dev/null >"$log" 2>&1 &
    pid=$!
    echo "$pid" >"$pidfile"
  fi
  deadline=$(( $(now) + timeout ))
  while (( $(now) < deadline )); do
    docker_ok && { note "dockerd answers"; return 0; }
    if [[ -n ${pid:-} ]] && ! kill -0 "$pid" 2>/dev/null; then
      die "dockerd exited: $(tail -n 3 "$log" | tr '\n' ' ') (log: $log)"
    fi
    sleep 1
  done
  die "dockerd did not answer within ${timeout}s (log: $log)"
}

# Seconds elapsed since $1, as "12s".
elapsed() { echo "$(( $(now) - $1 ))s"; }
