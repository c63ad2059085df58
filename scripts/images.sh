#!/usr/bin/env bash
# Builds and tags, locally, every image the compose files need, from what
# this machine reaches: Debian's archive (debootstrap, apt), Maven Central
# (Elasticsearch, HBase) and crates.io (the pm binary, built on the host).
# No image registry is contacted: nothing is pulled, every FROM names an
# image built here.
#
# Usage: scripts/images.sh [IMAGE...]     (default: all, in this order)
#
#   base           debootstrap --variant=minbase of Debian bookworm, imported
#   pm             the host-built release binary on base, by the runtime stage
#                  of the top-level Dockerfile
#   rabbitmq       Debian's rabbitmq-server with the management plugin
#   jre            Debian's OpenJDK 17 JRE on base, under elasticsearch and hbase
#   elasticsearch  the 8.19.x integ-test zip of scripts/services.sh on jre
#   hbase          the HBase jars of scripts/services.sh, standalone + Thrift v1, on jre
#   tcp-proxy      Debian's haproxy, configured like tecnativa/tcp-proxy
#
# Idempotent: every image carries the label org.peermountain.inputs, a hash
# of what it is built from (its docker/ directory, versions, the base image's
# id, the pm binary's digest); an image whose tag exists with the same hash
# is kept as it is. Progress and timings go to stderr; stdout is only one
# `NAME=TAG` line per image, for `eval`/`export`:
#
#   export $(scripts/images.sh)
#   docker stack deploy --resolve-image never -c docker-compose.yml pm
#
# Environment (all optional):
#   BASE_IMAGE           pm-local/base:bookworm
#   PM_IMAGE             pm-local/pm:latest
#   RABBITMQ_IMAGE       pm-local/rabbitmq:3.10-management
#   JRE_IMAGE            pm-local/jre:17-bookworm
#   ELASTICSEARCH_IMAGE  pm-local/elasticsearch:<ES version>
#   HBASE_IMAGE          pm-local/hbase:<HBase version>
#   TCP_PROXY_IMAGE      pm-local/tcp-proxy:latest
#   PM_BINARY            use this pm binary instead of building one
#   PM_TARGET_DIR        cargo target directory for the build (else
#                        CARGO_TARGET_DIR, else the project's target/)
#   PM_DEBIAN_MIRROR     Debian mirror for debootstrap and the images' apt
#                        (default: the first bookworm source of this machine's apt)
#   PM_IMAGES_DIR        caches and logs (default ~/.cache/pm-images)
#   PM_IMAGES_FORCE=1    rebuild even when the hash matches
set -euo pipefail
umask 022

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(dirname "$SCRIPT_DIR")
LIB_NAME=images.sh
# shellcheck source=scripts/docker-lib.sh
source "$SCRIPT_DIR/docker-lib.sh"

# Versions: the pins of scripts/services.sh, so the images run what the
# development servers run.
pin() { sed -n "s/^readonly $1=\"\(.*\)\".*/\1/p" "$SCRIPT_DIR/services.sh"; }
RABBITMQ_APT_VERSION=$(pin RABBITMQ_APT_VERSION)
ES_VERSION=$(pin ES_VERSION)
HBASE_VERSION=$(pin HBASE_VERSION)
HBASE_LOG4J2_VERSION=$(pin HBASE_LOG4J2_VERSION)
HBASE_SLF4J_VERSION=$(pin HBASE_SLF4J_VERSION)
MVN_DEPENDENCY_PLUGIN=$(pin MVN_DEPENDENCY_PLUGIN)
for v in RABBITMQ_APT_VERSION ES_VERSION HBASE_VERSION HBASE_LOG4J2_VERSION HBASE_SLF4J_VERSION MVN_DEPENDENCY_PLUGIN; do
  [[ -n ${!v} ]] || die "cannot read $v from scripts/services.sh"
done
readonly SUITE=bookworm

BASE_IMAGE=${BASE_IMAGE:-pm-local/base:$SUITE}
PM_IMAGE=${PM_IMAGE:-pm-local/pm:latest}
RABBITMQ_IMAGE=${RABBITMQ_IMAGE:-pm-local/rabbitmq:3.10-management}
JRE_IMAGE=${JRE_IMAGE:-pm-local/jre:17-$SUITE}
ELASTICSEARCH_IMAGE=${ELASTICSEARCH_IMAGE:-pm-local/elasticsearch:$ES_VERSION}
HBASE_IMAGE=${HBASE_IMAGE:-pm-local/hbase:$HBASE_VERSION}
TCP_PROXY_IMAGE=${TCP_PROXY_IMAGE:-pm-local/tcp-proxy:latest}

readonly LABEL=org.peermountain.inputs
readonly ALL_IMAGES="base pm rabbitmq jre elasticsearch hbase tcp-proxy"
readonly LOGS="$PM_IMAGES_DIR/logs"

CLEANUP=()
cleanup() {
  local d m
  for d in "${CLEANUP[@]}"; do
    # A debootstrap interrupted half-way can leave proc/sys mounted in its root.
    while read -r m; do umount -l "$m" 2>/dev/null || true; done \
      < <(awk -v d="$d/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r)
    rm -rf --one-file-system -- "$d"
  done
}
trap cleanup EXIT

# ---------------------------------------------------------------- helpers
image_label() { docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true; }
image_id() { docker image inspect --format '{{.Id}}' "$1"; }
sha() { sha256sum | cut -c1-64; }
# Content of a directory's files (names and bytes), as one hash.
dir_hash() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha; }

# true (and says so) when TAG exists with inputs HASH.
up_to_date() { # tag hash
  if [[ ${PM_IMAGES_FORCE:-0} != 1 && $(image_label "$1") == "$2" ]]; then
    note "$1: up to date"
    return 0
  fi
  return 1
}

new_tmp() { # -> path of a fresh directory removed at exit
  local d
  d=$(mktemp -d "$PM_IMAGES_DIR/.tmp.XXXXXX")
  CLEANUP+=("$d")
  echo "$d"
}

# docker build with the inputs label; apt inside the build uses the host's network.
build() { # name tag hash context dockerfile [docker build args...]
  local name=$1 tag=$2 hash=$3 context=$4 dockerfile=$5
  shift 5
  local log="$LOGS/build-$name.log"
  note "$tag: building (log: $log)"
  DOCKER_BUILDKIT=0 docker build --network host --label "$LABEL=$hash" \
      --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "JRE_IMAGE=$JRE_IMAGE" \
      -t "$tag" -f "$dockerfile" "$@" "$context" >"$log" 2>&1 \
    || die "$tag: docker build failed: $(grep -v '^ ---> \|^Step\|^Removing' "$log" | tail -n 5 | tr '\n' ' ') (log: $log)"
}

# The mirror of this machine's apt for SUITE (deb822 .sources, then sources.list).
debian_mirror() { # suite
  local want=$1 uri=""
  shopt -s nullglob
  local sources=(/etc/apt/sources.list.d/*.sources)
  shopt -u nullglob
  if (( ${#sources[@]} )); then
    uri=$(awk -v want="$want" 'BEGIN { RS = ""; FS = "\n" }
      { uri = ""; suites = ""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); uri = $i }
          if ($i ~ /^Suites:/) { sub(/^Suites:[ \t]*/, "", $i); suites = " " $i " " }
        }
        if (uri != "" && index(suites, " " want " ")) { split(uri, u, " "); print u[1]; exit } }' "${sources[@]}")
  fi
  if [[ -z $uri && -r /etc/apt/sources.list ]]; then
    uri=$(awk -v want="$want" '$1 == "deb" { f = 2; if ($2 ~ /^\[/) { while ($f !~ /\]$/) f++; f++ }
      if ($(f + 1) == want) { print $f; exit } }' /etc/apt/sources.list)
  fi
  echo "$uri"
}

mvn_ok() { command -v mvn >/dev/null 2>&1 || ensure_packages maven; }

# ------------------------------------------------------------------ images
build_base() {
  local mirror security hash rootfs log="$LOGS/debootstrap.log"
  mirror=${PM_DEBIAN_MIRROR:-$(debian_mirror "$SUITE")}
  [[ -n $mirror ]] || die "base: no Debian $SUITE source in this machine's apt configuration; set PM_DEBIAN_MIRROR"
  security=${PM_DEBIAN_SECURITY_MIRROR:-$(debian_mirror "$SUITE-security")}
  hash=$(printf '%s\n' "base v1" "$SUITE" minbase "$mirror" "$security" | sha)
  up_to_date "$BASE_IMAGE" "$hash" && return 0
  ensure_packages debootstrap
  rootfs=$(new_tmp)/rootfs
  mkdir -p "$PM_IMAGES_DIR/debootstrap-cache"
  note "base: debootstrap --variant=minbase $SUITE (log: $log)"
  debootstrap --variant=minbase --cache-dir="$PM_IMAGES_DIR/debootstrap-cache" "$SUITE" "$rootfs" "$mirror" \
      >"$log" 2>&1 || die "base: debootstrap failed: $(tail -n 3 "$log" | tr '\n' ' ') (log: $log)"
  {
    echo "deb $mirror $SUITE main"
    echo "deb $mirror $SUITE-updates main"
    [[ -n $security ]] && echo "deb $security $SUITE-security main"
  } >"$rootfs/etc/apt/sources.list"
  # What the public debian images do: no recommends, no caches kept.
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$rootfs/etc/apt/apt.conf.d/90pm-local"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/var/log/*.log
  note "base: importing as $BASE_IMAGE"
  tar --numeric-owner -C "$rootfs" -c . \
    | docker import --change "LABEL $LABEL=$hash" --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$BASE_IMAGE" >/dev/null \
    || die "base: docker import failed"
}

build_pm() {
  local binary=${PM_BINARY:-} target log="$LOGS/cargo-build.log" hash ctx
  if [[ -z $binary ]]; then
    target=${PM_TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}}
    note "pm: cargo build --release --locked --bin pm (target dir $target, log: $log)"
    (cd "$ROOT" && CARGO_TARGET_DIR="$target" nice -n 19 cargo build --release --locked --bin pm) >"$log" 2>&1 \
      || die "pm: cargo build failed: $(tail -n 5 "$log" | tr '\n' ' ') (log: $log)"
    binary=$target/release/pm
  fi
  [[ -x $binary ]] || die "pm: no executable at $binary"
  ctx=$(new_tmp)
  runtime_stage >"$ctx/Dockerfile"
  hash=$( { echo "pm v2"; image_id "$BASE_IMAGE"; sha <"$ctx/Dockerfile"; sha <"$binary"; } | sha)
  up_to_date "$PM_IMAGE" "$hash" && return 0
  cp "$binary" "$ctx/pm"
  # A debug binary (PM_BINARY=target/debug/pm) carries hundreds of MB of debug info.
  if command -v strip >/dev/null 2>&1; then strip --strip-debug "$ctx/pm" 2>/dev/null || true; fi
  build pm "$PM_IMAGE" "$hash" "$ctx" "$ctx/Dockerfile" --build-arg "RUNTIME_IMAGE=$BASE_IMAGE"
}

# The top-level Dockerfile's runtime stage alone (its RUNTIME_IMAGE argument,
# then every line from its FROM on), with the binary copied from the build
# context instead of the builder stage: one file says what the image is,
# whether docker builds pm or the host does.
runtime_stage() {
  local stage
  stage=$(awk '/^ARG RUNTIME_IMAGE=/ { print } /^FROM \$\{RUNTIME_IMAGE\} AS runtime$/ { on = 1 } on' "$ROOT/Dockerfile")
  grep -qx 'COPY --from=builder /usr/local/bin/pm /usr/local/bin/pm' <<<"$stage" \
    || die "pm: the Dockerfile's runtime stage no longer copies /usr/local/bin/pm from the builder"
  sed 's#^COPY --from=builder /usr/local/bin/pm /usr/local/bin/pm$#COPY pm /usr/local/bin/pm#' <<<"$stage"
}

build_rabbitmq() {
  local hash
  hash=$( { echo "rabbitmq v1 $RABBITMQ_APT_VERSION"; image_id "$BASE_IMAGE"; dir_hash "$ROOT/docker/rabbitmq"; } | sha)
  up_to_date "$RABBITMQ_IMAGE" "$hash" && return 0
  build rabbitmq "$RABBITMQ_IMAGE" "$hash" "$ROOT/docker/rabbitmq" "$ROOT/docker/rabbitmq/Dockerfile" \
    --build-arg "RABBITMQ_APT_VERSION=$RABBITMQ_APT_VERSION"
}

build_elasticsearch() {
  local hash ctx dl log="$LOGS/maven-elasticsearch.log"
  hash=$( { echo "elasticsearch v2 $ES_VERSION"; image_id "$JRE_IMAGE"; dir_hash "$ROOT/docker/elasticsearch"; } | sha)
  up_to_date "$ELASTICSEARCH_IMAGE" "$hash" && return 0
  mvn_ok
  ensure_packages unzip
  ctx=$(new_tmp)
  dl="$ctx/download"
  mkdir -p "$dl"
  note "elasticsearch: fetching the $ES_VERSION integ-test zip with maven (log: $log)"
  (cd "$dl" && mvn -B -q "$MVN_DEPENDENCY_PLUGIN:copy" \
      -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip" \
      -DoutputDirectory="$dl") >"$log" 2>&1 \
    || die "elasticsearch: maven could not fetch $ES_VERSION (log: $log)"
  unzip -q "$dl/elasticsearch-$ES_VERSION.zip" -d "$dl" || die "elasticsearch: unzip failed"
  mv "$dl/elasticsearch-$ES_VERSION" "$ctx/elasticsearch"
  rm -rf "$dl"
  cp "$ROOT"/docker/elasticsearch/* "$ctx/"
  build elasticsearch "$ELASTICSEARCH_IMAGE" "$hash" "$ctx" "$ctx/Dockerfile"
}

build_hbase() {
  local hash ctx pom="$SCRIPT_DIR/hbase/pom.xml" log="$LOGS/maven-hbase.log"
  hash=$( { echo "hbase v2 $HBASE_VERSION $HBASE_LOG4J2_VERSION $HBASE_SLF4J_VERSION"; sha <"$pom";
            image_id "$JRE_IMAGE"; dir_hash "$ROOT/docker/hbase"; } | sha)
  up_to_date "$HBASE_IMAGE" "$hash" && return 0
  mvn_ok
  ctx=$(new_tmp)
  note "hbase: resolving the HBase $HBASE_VERSION jars with maven (log: $log)"
  mvn -B -q -f "$pom" \
      -Dhbase.version="$HBASE_VERSION" -Dlog4j2.version="$HBASE_LOG4J2_VERSION" -Dslf4j.version="$HBASE_SLF4J_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$ctx/lib" >"$log" 2>&1 \
    || die "hbase: maven could not resolve the jars (log: $log)"
  [[ -f $ctx/lib/hbase-thrift-$HBASE_VERSION.jar ]] || die "hbase: hbase-thrift-$HBASE_VERSION.jar not resolved (log: $log)"
  cp "$ROOT"/docker/hbase/* "$ctx/"
  build hbase "$HBASE_IMAGE" "$hash" "$ctx" "$ctx/Dockerfile"
}

build_jre() {
  local hash
  hash=$( { echo "jre v1"; image_id "$BASE_IMAGE"; dir_hash "$ROOT/docker/jre"; } | sha)
  up_to_date "$JRE_IMAGE" "$hash" && return 0
  build jre "$JRE_IMAGE" "$hash" "$ROOT/docker/jre" "$ROOT/docker/jre/Dockerfile"
}

build_tcp_proxy() {
  local hash
  hash=$( { echo "tcp-proxy v1"; image_id "$BASE_IMAGE"; dir_hash "$ROOT/docker/tcp-proxy"; } | sha)
  up_to_date "$TCP_PROXY_IMAGE" "$hash" && return 0
  build tcp-proxy "$TCP_PROXY_IMAGE" "$hash" "$ROOT/docker/tcp-proxy" "$ROOT/docker/tcp-proxy/Dockerfile"
}

# -------------------------------------------------------------------- main
main() {
  local wanted=("$@") image t0 start
  (( ${#wanted[@]} )) || read -r -a wanted <<<"$ALL_IMAGES"
  for image in "${wanted[@]}"; do
    [[ " $ALL_IMAGES " == *" $image "* ]] || die "unknown image '$image' (known: $ALL_IMAGES)"
  done
  start=$(now)
  ensure_dockerd
  # Every other image starts FROM base (or jre, which does): make sure it exists.
  if [[ " ${wanted[*]} " != *" base "* ]] && ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    wanted=(base "${wanted[@]}")
  fi
  # elasticsearch and hbase start FROM jre: build it first when it is missing.
  if [[ " ${wanted[*]} " == *" elasticsearch "* || " ${wanted[*]} " == *" hbase "* ]] \
      && [[ " ${wanted[*]} " != *" jre "* ]] && ! docker image inspect "$JRE_IMAGE" >/dev/null 2>&1; then
    local i=0
    while [[ ${wanted[$i]} == base ]]; do i=$((i + 1)); done
    wanted=("${wanted[@]:0:$i}" jre "${wanted[@]:$i}")
  fi
  for image in "${wanted[@]}"; do
    t0=$(now)
    "build_${image//-/_}"
    note "$image: $(elapsed "$t0")"
  done
  # Images replaced under the same tag would stay behind, untagged.
  docker image prune -f --filter "label=$LABEL" >/dev/null 2>&1 || true
  note "all done in $(elapsed "$start")"
  for image in "${wanted[@]}"; do
    case $image in
      base) echo "BASE_IMAGE=$BASE_IMAGE" ;;
      pm) echo "PM_IMAGE=$PM_IMAGE" ;;
      rabbitmq) echo "RABBITMQ_IMAGE=$RABBITMQ_IMAGE" ;;
      jre) echo "JRE_IMAGE=$JRE_IMAGE" ;;
      elasticsearch) echo "ELASTICSEARCH_IMAGE=$ELASTICSEARCH_IMAGE" ;;
      hbase) echo "HBASE_IMAGE=$HBASE_IMAGE" ;;
      tcp-proxy) echo "TCP_PROXY_IMAGE=$TCP_PROXY_IMAGE" ;;
    esac
  done
}

main "$@"
