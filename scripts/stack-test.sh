#!/usr/bin/env bash
# The containers for real: builds the images (scripts/images.sh), deploys
# docker-compose.yml as a swarm stack from them, and drives it through the
# published gateway port on 127.0.0.1 with the `pm` client.
#
# Usage: scripts/stack-test.sh [stack|dev|all]      (default: stack)
#
#   stack  dockerd and a one-node swarm if needed; `docker stack deploy
#          --resolve-image never` with docker/stack-one-node.yml; wait until
#          every service is healthy and bootstrap has completed; the README
#          walkthrough (keygen, invite, register, assert, every lookup); one
#          refusal per family of codes; writers scaled to 3 and authorizers
#          to 2, a flood of assertions, each accepted one stored exactly once;
#          a second flood with one writer container killed in the middle,
#          checked the same way; `docker stack rm`, and nothing of the stack
#          left (service, container, network, volume, secret, config).
#   dev    docker-compose-development.yml with Debian's docker-compose, the
#          roles from the pm image (docker/development-prebuilt.yml), the
#          servers from the local images; the walkthrough; `down -v`.
#
# Every wait and loop is bounded; cleanup runs on any exit. Prints each
# step's time and, for the floods, accepted / stored / duplicated / lost.
#
# Environment (all optional):
#   PM_STACK_NAME        stack and compose project name (default pmtest)
#   PM_STACK_TEST_PORT   first of 9 host ports (gateway, then the dev file's
#                        others); default: a free block between 20000 and 29999
#   PM_STACK_TEST_FLOOD  assertions per flood (default 200)
#   PM_STACK_TEST_TIMEOUT seconds to wait for the stack to be healthy (default 600)
#   PM_STACK_TEST_SKIP_IMAGES=1  use the images already tagged (names from
#                        the *_IMAGE variables, else images.sh's defaults)
#   PM_BINARY, PM_TARGET_DIR, CARGO_TARGET_DIR, *_IMAGE: as for scripts/images.sh
set -euo pipefail
umask 022

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(dirname "$SCRIPT_DIR")
LIB_NAME=stack-test.sh
# shellcheck source=scripts/docker-lib.sh
source "$SCRIPT_DIR/docker-lib.sh"

MODE=${1:-stack}
STACK=${PM_STACK_NAME:-pmtest}
FLOOD=${PM_STACK_TEST_FLOOD:-200}
STACK_TIMEOUT=${PM_STACK_TEST_TIMEOUT:-600}

port_free() { # port
  [[ -z $(ss -Htan "sport = :$1" 2>/dev/null) ]] && ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
# Nine consecutive free ports (other people's servers and tests share this machine).
pick_ports() {
  local tries base i
  for tries in $(seq 100); do
    base=$(( 20000 + (RANDOM % 1000) * 9 ))
    for i in $(seq 0 8); do port_free $((base + i)) || continue 2; done
    echo "$base"
    return 0
  done
  die "no block of 9 free ports found between 20000 and 29999; set PM_STACK_TEST_PORT"
}
GATEWAY_PORT=${PM_STACK_TEST_PORT:-$(pick_ports)}
URL="http://127.0.0.1:$GATEWAY_PORT/teleferic"
export PM_URL=$URL
readonly TEST_LABEL=org.peermountain.stack-test

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pm-stack-test.XXXXXX")
chmod 0755 "$WORK"

# ------------------------------------------------------------ step timing
STEPS=()
STEP="" STEP_T0=0 RUN_T0=$(now)
step() { # name
  step_end
  STEP=$1 STEP_T0=$(now)
  printf '\n== %s\n' "$STEP" >&2
}
step_end() {
  if [[ -n $STEP ]]; then
    STEPS+=("$(printf '%-44s %5ss' "$STEP" "$(( $(now) - STEP_T0 ))")")
    STEP=""
  fi
}
report_steps() {
  step_end
  printf '\n== step timings (%s)\n' "$MODE" >&2
  local s
  for s in "${STEPS[@]}"; do printf '  %s\n' "$s" >&2; done
  printf '  %-44s %5ss\n' total "$(( $(now) - RUN_T0 ))" >&2
}
fail() { printf 'stack-test.sh: FAIL [%s]: %s\n' "${STEP:-setup}" "$*" >&2; exit 1; }
ok() { printf '  ok: %s\n' "$*" >&2; }

# ---------------------------------------------------------------- client
PM=""
pm() { "$PM" "$@"; }

# One GraphQL request; prints the response body.
gql() { # query [variables-json]
  local body
  body=$(jq -cn --arg q "$1" --argjson v "${2:-{\}}" '{query: $q, variables: $v}')
  curl -sS --max-time 30 -H 'content-type: application/json' --data-binary "$body" "$URL"
}

# The error code of a GraphQL answer (empty when it has none).
code_of() { jq -r '.errors[0].extensions.code // empty' <<<"$1"; }

# Retry a command until it prints something other than null/empty (bounded).
wait_for_output() { # seconds description cmd...
  local seconds=$1 what=$2 deadline out
  shift 2
  deadline=$(( $(now) + seconds ))
  while (( $(now) < deadline )); do
    out=$("$@" 2>/dev/null) || out=""
    if [[ -n $out && $out != null && $out != "[]" ]]; then
      printf '%s' "$out"
      return 0
    fi
    sleep 1
  done
  fail "$what: nothing after ${seconds}s"
}

expect_refusal() { # code description cmd...
  local code=$1 what=$2 out
  shift 2
  if out=$("$@" 2>&1); then
    fail "$what: accepted, expected $code: $out"
  fi
  [[ $out == *"$code"* ]] || fail "$what: expected $code, got: $out"
  ok "$what -> $code"
}

expect_code() { # code description response
  local got
  got=$(code_of "$3")
  [[ $got == "$1" ]] || fail "$2: expected $1, got '${got}': $(head -c 300 <<<"$3")"
  ok "$2 -> $1"
}

# ------------------------------------------------------------- docker bits
stack_services() { docker service ls -q --filter "label=com.docker.stack.namespace=$STACK" 2>/dev/null; }
stack_containers() { docker ps -aq --filter "label=com.docker.stack.namespace=$STACK" 2>/dev/null; }
stack_networks() { docker network ls -q --filter "label=com.docker.stack.namespace=$STACK" 2>/dev/null; }
stack_volumes() { docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK" 2>/dev/null; }

diagnose() { # service names (without the stack prefix)...
  local s
  for s in "$@"; do
    printf -- '--- %s_%s tasks\n' "$STACK" "$s" >&2
    docker service ps --no-trunc --format '{{.Name}} {{.CurrentState}} {{.Error}}' "${STACK}_$s" 2>&1 | head -n 6 >&2 || true
    printf -- '--- %s_%s logs (last 15 lines)\n' "$STACK" "$s" >&2
    timeout 20 docker service logs --raw --tail 15 "${STACK}_$s" 2>&1 | cut -c1-300 >&2 || true
  done
}

# Every replicated service runs all its replicas, healthy, and bootstrap
# has completed; bounded by $1 seconds.
wait_healthy() { # seconds
  local deadline=$(( $(now) + $1 )) line name replicas pending last=""
  while :; do
    pending=()
    while read -r name replicas; do
      name=${name#"${STACK}_"}
      if [[ $name == bootstrap ]]; then
        docker service ps --format '{{.CurrentState}}' "${STACK}_bootstrap" 2>/dev/null | grep -q '^Complete' \
          || pending+=("bootstrap(not complete)")
        continue
      fi
      replicas=${replicas%% *}
      [[ ${replicas%/*} == "${replicas#*/}" && ${replicas%/*} != 0 ]] || pending+=("$name($replicas)")
    done < <(docker service ls --filter "label=com.docker.stack.namespace=$STACK" --format '{{.Name}} {{.Replicas}}')
    # Running is not enough where there is a health check.
    while read -r line; do
      [[ -n $line ]] && pending+=("$line")
    done < <(docker ps --filter "label=com.docker.stack.namespace=$STACK" --filter health=starting \
               --filter health=unhealthy --format '{{.Names}}[{{.Status}}]' 2>/dev/null)
    (( ${#pending[@]} == 0 )) && return 0
    # Progress: the services still pending, when that changes.
    line=$(printf '%s\n' "${pending[@]}" | grep -v '\[' | tr '\n' ' ')
    if [[ $line != "$last" ]]; then
      note "waiting ($(( deadline - $(now) ))s left): ${line:-containers still starting}"
      last=$line
    fi
    if (( $(now) >= deadline )); then
      # shellcheck disable=SC2046 # one word per service
      diagnose $(printf '%s\n' "${pending[@]}" | sed -e 's/[([].*//' -e "s/^${STACK}_//" -e 's/\..*//' | sort -u)
      fail "not healthy after $1s: ${pending[*]}"
    fi
    sleep 3
  done
}

# --------------------------------------------------------------- cleanup
SWARM_CREATED=0 GWBRIDGE_CREATED=0 LABEL_ADDED=0 NODE_ID="" STACK_DEPLOYED=0 DEV_UP=0 CLEANED=0
DEV_COMPOSE=()

stack_cleanup() {
  (( STACK_DEPLOYED )) || return 0
  local deadline
  step "stack rm and nothing left behind"
  docker stack rm "$STACK" >/dev/null 2>&1 || true
  # Services go at once; their containers and networks a little later.
  deadline=$(( $(now) + 180 ))
  while [[ -n $(stack_services)$(stack_containers)$(stack_networks) ]] && (( $(now) < deadline )); do sleep 2; done
  local v
  for v in $(stack_volumes); do docker volume rm "$v" >/dev/null 2>&1 || true; done
  docker secret ls -q --filter "label=$TEST_LABEL=$STACK" | xargs -r docker secret rm >/dev/null 2>&1 || true
  docker config ls -q --filter "label=$TEST_LABEL=$STACK" | xargs -r docker config rm >/dev/null 2>&1 || true
  STACK_DEPLOYED=0
  local left=()
  [[ -z $(stack_services) ]] || left+=(services)
  [[ -z $(stack_containers) ]] || left+=(containers)
  [[ -z $(stack_networks) ]] || left+=(networks)
  [[ -z $(stack_volumes) ]] || left+=(volumes)
  [[ -z $(docker secret ls -q --filter "label=$TEST_LABEL=$STACK") ]] || left+=(secrets)
  [[ -z $(docker config ls -q --filter "label=$TEST_LABEL=$STACK") ]] || left+=(configs)
  (( ${#left[@]} == 0 )) || { printf 'stack-test.sh: FAIL: left behind after stack rm: %s\n' "${left[*]}" >&2; return 1; }
  ok "no service, container, network, volume, secret or config of $STACK left"
}

dev_cleanup() {
  (( DEV_UP )) || return 0
  step "dev: down -v, nothing left behind"
  timeout 300 docker-compose "${DEV_COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  DEV_UP=0
  local left
  left=$(docker ps -aq --filter "label=com.docker.compose.project=$STACK")$(docker volume ls -q --filter "label=com.docker.compose.project=$STACK")$(docker network ls -q --filter "label=com.docker.compose.project=$STACK")
  [[ -z $left ]] || { printf 'stack-test.sh: FAIL: docker-compose down left containers, volumes or networks\n' >&2; return 1; }
  ok "no container, volume or network of project $STACK left"
}

cleanup() {
  local rc=$? crc=0
  (( CLEANED )) && return
  CLEANED=1
  trap '' INT TERM   # a second signal must not cut the cleanup short
  set +e
  stack_cleanup || crc=1
  dev_cleanup || crc=1
  if (( LABEL_ADDED )); then docker node update --label-rm pm.storage "$NODE_ID" >/dev/null 2>&1; fi
  if (( SWARM_CREATED )); then
    docker swarm leave --force >/dev/null 2>&1
    # swarm init's bridge for the overlay networks' traffic to the host.
    (( GWBRIDGE_CREATED )) && docker network rm docker_gwbridge >/dev/null 2>&1
    ok "left the swarm this test created"
  fi
  rm -rf "$WORK"
  report_steps
  (( rc == 0 && crc != 0 )) && rc=1
  if (( rc == 0 )); then echo "stack-test.sh ($MODE): PASS" >&2; else echo "stack-test.sh ($MODE): FAIL (exit $rc)" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------ shared steps
prepare() {
  step "dockerd, tools"
  ensure_dockerd
  command -v jq >/dev/null 2>&1 || ensure_packages jq
  command -v curl >/dev/null 2>&1 || ensure_packages curl
  if [[ $MODE != stack ]]; then
    command -v docker-compose >/dev/null 2>&1 || ensure_packages docker-compose
  fi
  port_free "$GATEWAY_PORT" || fail "port $GATEWAY_PORT is taken; set PM_STACK_TEST_PORT"
  ok "host ports from $GATEWAY_PORT"

  step "images (scripts/images.sh)"
  local assignments
  if [[ ${PM_STACK_TEST_SKIP_IMAGES:-0} == 1 ]]; then
    assignments=$(printf '%s\n' "PM_IMAGE=${PM_IMAGE:-pm-local/pm:latest}" \
      "RABBITMQ_IMAGE=${RABBITMQ_IMAGE:-pm-local/rabbitmq:3.10-management}" \
      "ELASTICSEARCH_IMAGE=${ELASTICSEARCH_IMAGE:-pm-local/elasticsearch:8.19.21}" \
      "HBASE_IMAGE=${HBASE_IMAGE:-pm-local/hbase:2.6.1}" "TCP_PROXY_IMAGE=${TCP_PROXY_IMAGE:-pm-local/tcp-proxy:latest}")
  else
    assignments=$("$SCRIPT_DIR/images.sh") || fail "scripts/images.sh failed"
  fi
  local a
  while read -r a; do
    [[ $a == *=* ]] && export "${a?}"
  done <<<"$assignments"
  for a in PM_IMAGE RABBITMQ_IMAGE ELASTICSEARCH_IMAGE HBASE_IMAGE TCP_PROXY_IMAGE; do
    docker image inspect "${!a}" >/dev/null 2>&1 || fail "image ${!a} ($a) is missing: run scripts/images.sh"
  done
  PM=${PM_BINARY:-${PM_TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}}/release/pm}
  [[ -x $PM ]] || fail "no pm client at $PM (scripts/images.sh builds it; or set PM_BINARY)"
  ok "client $PM ($("$PM" --version))"
}

# The README walkthrough against $URL: genesis invites alice, alice
# registers and asserts, every lookup answers. Sets ALICE, GENESIS, ASSERTION.
walkthrough() { # genesis-key-file
  local genesis_key=$1 out invitation invite_name persona today listing
  cd "$(mktemp -d "$WORK/walkthrough.XXXXXX")"   # alice's files, once per run of the walkthrough
  GENESIS=$(pm address --key "$genesis_key")
  out=$(pm persona --nickname genesis) || fail "persona lookup: $out"
  [[ $(jq -r .address <<<"$out") == "$GENESIS" ]] || fail "the genesis persona is not $GENESIS: $out"
  ok "genesis persona $GENESIS"

  # The invite key goes to a file (0600), never to the screen or a command line.
  out=$(pm invite --key "$genesis_key" --name alice-invite --invite-key-out alice.invite) || fail "invite: $out"
  invitation=$(sed -n 's/^invitation: //p' <<<"$out")
  invite_name=$(sed -n 's/^invite name: //p' <<<"$out")
  [[ -n $invitation && -s alice.invite && $invite_name == alice-invite ]] || fail "invite printed: $out"
  [[ $(stat -c %a alice.invite) == 600 ]] || fail "the invite key file has mode $(stat -c %a alice.invite)"
  ! grep -qF "$(cat alice.invite)" <<<"$out" || fail "pm invite printed the invite key"
  ALICE_INVITATION=$invitation ALICE_INVITE_KEY_FILE=$PWD/alice.invite
  ok "invitation $invitation"
  wait_for_output 60 "the invitation stored" pm message --hash "$invitation" >/dev/null

  pm keygen --out alice.key >/dev/null
  ALICE=$(pm address --key alice.key)
  out=$(pm register --key alice.key --nickname alice --invitation "$invitation" \
          --invite-key-file alice.invite --invite-name "$invite_name" 2>&1) || fail "register: $out"
  [[ $out != *warning* ]] || fail "register with a key file warned: $out"
  ok "registered $ALICE"
  out=$(wait_for_output 60 "alice stored" pm persona --nickname ALICE)
  [[ $(jq -r .address <<<"$out") == "$ALICE" && $(jq -r .nickname <<<"$out") == alice ]] \
    || fail "persona --nickname ALICE: $out"
  ok "persona --nickname ALICE (letter case ignored)"
  out=$(pm persona --address "$ALICE")
  [[ $(jq -r .nickname <<<"$out") == alice ]] || fail "persona --address: $out"
  pm pubkey --key alice.key >alice.pub
  out=$(pm persona --pubkey alice.pub)
  [[ $(jq -r .address <<<"$out") == "$ALICE" ]] || fail "persona --pubkey: $out"
  ok "persona --address, --pubkey"

  echo hello >object.txt
  out=$(pm assert --key alice.key --reader "$GENESIS" --reader "$ALICE" \
          --text "alice asserts" --object-file object.txt) || fail "assert: $out"
  ASSERTION=$(sed -n 's/^assertion: //p' <<<"$out")
  [[ -n $ASSERTION ]] || fail "assert printed: $out"
  out=$(wait_for_output 60 "the assertion stored" pm message --hash "$ASSERTION")
  [[ $(jq -r .messageHash <<<"$out") == "$ASSERTION" && $(jq -r .messageType <<<"$out") == ASSERTION ]] \
    || fail "message --hash: $out"
  [[ $(jq '.objects | length' <<<"$out") == 1 && $(jq '.ACL | length' <<<"$out") == 2 ]] \
    || fail "the assertion's object and two readers: $out"
  ASSERTION_JSON=$out
  ok "assertion $ASSERTION (one object, two readers)"

  listing=$(pm message --sender "$ALICE" --limit 10)
  jq -e --arg h "$ASSERTION" 'map(.messageHash) | index($h) != null' <<<"$listing" >/dev/null \
    || fail "message --sender: $listing"
  listing=$(pm message --reader "$GENESIS")
  jq -e --arg h "$ASSERTION" 'map(.messageHash) | index($h) != null' <<<"$listing" >/dev/null \
    || fail "message --reader: $listing"
  today=$(date -u +%F)
  listing=$(pm message --date "$today" --limit 1000)
  jq -e --arg h "$ASSERTION" 'map(.messageHash) | index($h) != null' <<<"$listing" >/dev/null \
    || fail "message --date $today: $listing"
  out=$(gql 'query($h: SHA256!) { objectByHash(objectHash: $h) { objectHash container { containerHash } } }' \
          "$(jq -c '{h: .objects[0].objectHash}' <<<"$ASSERTION_JSON")")
  [[ $(jq -r '.data.objectByHash.objectHash' <<<"$out") == "$(jq -r '.objects[0].objectHash' <<<"$ASSERTION_JSON")" ]] \
    || fail "objectByHash: $out"
  ok "message --sender, --reader, --date, --hash; objectByHash"

  # The live tail through the gateway (it relays the writers' events from
  # the broker): pm tail follows alice until it has printed one of hers.
  local tail_out tail_pid sent=0
  tail_out=$(mktemp "$WORK/tail.XXXXXX")
  timeout 120 "$PM" tail --sender "$ALICE" --count 1 --json >"$tail_out" 2>"$tail_out.err" &
  tail_pid=$!
  while kill -0 "$tail_pid" 2>/dev/null && ((sent < 40)); do
    pm assert --key alice.key --reader "$ALICE" --text "live $sent" >/dev/null || fail "assert (live)"
    sent=$((sent + 1))
    sleep 1
  done
  wait "$tail_pid" || fail "pm tail: $(cat "$tail_out.err")"
  [[ $(jq -r 'select(.messageHash) | .sender.address' "$tail_out" 2>/dev/null) == "$ALICE" ]] \
    || fail "pm tail printed: $(cat "$tail_out")"
  ok "pm tail followed a new message of alice's live (after $sent sent)"
}

# One refused request per family of codes (PROTOCOL.md section 7).
refusals() { # genesis-key-file
  local genesis_key=$1 envelope out other_hash big
  cd "$WORK"
  # The stored assertion, as an input envelope again.
  envelope=$(jq -c '{sender: .sender.address, messageType, messageHash, messageSign, dossierHash, bodyHash,
      ACL: [.ACL[] | {reader: .reader.address, key}],
      objects: [.objects[] | {objectHash, metaHashes,
                              container: (.container | if . == null then null
                                          else {containerHash, containerSign, objectContainer} end)}],
      message}' <<<"$ASSERTION_JSON")
  local send='mutation($e: MessageEnvelopeInput!) { sendMessage(envelope: $e) { messageHash } }'
  expect_code DUPLICATE_MESSAGE "the same envelope again (duplicate)" \
    "$(gql "$send" "$(jq -c '{e: .}' <<<"$envelope")")"
  # The SHA256 scalar is base64 of the 32 bytes.
  other_hash=$(printf '%b' "$(printf 'pm stack test' | sha256sum | cut -c1-64 | sed 's/../\\x&/g')" | base64)
  expect_code MESSAGE_HASH_MISMATCH "another messageHash (hashes)" \
    "$(gql "$send" "$(jq -c --arg h "$other_hash" '{e: (.messageHash = $h)}' <<<"$envelope")")"
  expect_code MALFORMED_ENVELOPE "a sender that is no address (shape)" \
    "$(gql "$send" "$(jq -c '{e: (.sender = "not-an-address")}' <<<"$envelope")")"
  pm keygen --out stranger.key >/dev/null
  expect_refusal UNKNOWN_SENDER "an unregistered sender (senders)" \
    pm assert --key stranger.key --reader "$ALICE" --text "who am I"
  pm keygen --out mallory.key >/dev/null
  expect_refusal INVITE_ALREADY_USED "alice's invitation again (invitations)" \
    pm register --key mallory.key --nickname mallory --invitation "$ALICE_INVITATION" \
      --invite-key-file "$ALICE_INVITE_KEY_FILE" --invite-name alice-invite
  local second_key
  second_key=$(mktemp -u "$WORK/second.XXXXXX.invite")   # pm invite never overwrites a key file
  out=$(pm invite --key "$genesis_key" --name second-invite --invite-key-out "$second_key") || fail "invite: $out"
  wait_for_output 60 "the second invitation stored" pm message --hash "$(sed -n 's/^invitation: //p' <<<"$out")" >/dev/null
  expect_refusal NICKNAME_TAKEN "nickname ALICE taken (personas)" \
    pm register --key mallory.key --nickname ALICE --invitation "$(sed -n 's/^invitation: //p' <<<"$out")" \
      --invite-key-file "$second_key" --invite-name second-invite
  expect_code BAD_QUERY "limit 0 (queries)" \
    "$(gql 'query($s: Address!) { messageBySender(sender: $s, limit: 0) { messageHash } }' \
          "$(jq -cn --arg s "$ALICE" '{s: $s}')")"
  # A request over the gateway's 4 MiB limit: 413 with the code.
  big=$WORK/big.json
  { printf '{"query":"{ teleferic { signedTimestamp } }","variables":{"pad":"'
    head -c $((5 * 1024 * 1024)) /dev/zero | tr '\0' 'a'
    printf '"}}'; } >"$big"
  out=$(curl -sS --max-time 30 -o "$WORK/big.out" -w '%{http_code}' -H 'content-type: application/json' \
          --data-binary "@$big" "$URL") || true
  [[ $out == 413 ]] || fail "a 5 MiB request: HTTP $out, expected 413"
  ok "a 5 MiB request (limits) -> HTTP 413 $(jq -r '.errors[0].extensions.code // empty' "$WORK/big.out" 2>/dev/null)"
}

# Registers a persona invited by genesis; prints its key file's path. Its
# registration's hash goes to $WORK/NICKNAME.registration.
new_sender() { # genesis-key nickname
  local out key="$WORK/$2.key"
  local inv invite_key_file
  invite_key_file=$(mktemp -u "$WORK/$2.XXXXXX.invite")   # pm invite never overwrites a key file
  out=$(pm invite --key "$1" --name "$2-invite" --invite-key-out "$invite_key_file") || fail "invite $2: $out"
  inv=$(sed -n 's/^invitation: //p' <<<"$out")
  wait_for_output 60 "$2's invitation stored" pm message --hash "$inv" >/dev/null
  pm keygen --out "$key" >/dev/null
  out=$(pm register --key "$key" --nickname "$2" --invitation "$inv" --invite-key-file "$invite_key_file" \
          --invite-name "$2-invite") \
    || fail "register $2: $out"
  sed -n 's/^registration: //p' <<<"$out" >"$WORK/$2.registration"
  wait_for_output 60 "$2 stored" pm persona --nickname "$2" >/dev/null
  echo "$key"
}

# Sends COUNT assertions from KEY, 4 at a time; writes the accepted hashes
# to FILE.accepted and the failures to FILE.refused. Bounded in time.
flood() { # key count file
  local key=$1 count=$2 file=$3
  : >"$file.accepted"
  : >"$file.refused"
  # shellcheck disable=SC2016 # expanded by the inner shell
  seq 1 "$count" | timeout 600 xargs -P 4 -I{} bash -c '
    if out=$(timeout 60 "$0" assert --key "$1" --text "flood message {}" 2>&1); then
      sed -n "s/^assertion: //p" <<<"$out" >>"$2.accepted"
    else
      echo "{} $out" >>"$2.refused"
    fi' "$PM" "$key" "$file" || true
}

# Every messageHash listed for SENDER, page by page (limit 100, after).
list_sender() { # address file
  local after="" page n pages=0
  : >"$2"
  while (( pages < 1000 )); do
    page=$(gql 'query($s: Address!, $a: String) { messageBySender(sender: $s, limit: 100, after: $a) { messageHash } }' \
             "$(jq -cn --arg s "$1" --arg a "$after" '{s: $s, a: (if $a == "" then null else $a end)}')")
    [[ -z $(code_of "$page") ]] || fail "messageBySender: $page"
    n=$(jq '.data.messageBySender | length' <<<"$page")
    (( n == 0 )) && return 0
    jq -r '.data.messageBySender[].messageHash' <<<"$page" >>"$2"
    after=$(jq -r '.data.messageBySender[-1].messageHash' <<<"$page")
    pages=$((pages + 1))
  done
  fail "messageBySender: more than 1000 pages"
}

# Waits (bounded) until every accepted hash is listed, then counts. What
# the sender had stored before the flood (its registration) is left out.
check_stored() { # address file label
  local address=$1 file=$2 label=$3 deadline accepted stored unique dup lost extra
  accepted=$(sort -u "$file.accepted" | wc -l)
  deadline=$(( $(now) + 180 ))
  while :; do
    list_sender "$address" "$file.listed"
    grep -vxF -f "$file.before" "$file.listed" >"$file.stored" || true
    lost=$(comm -23 <(sort -u "$file.accepted") <(sort -u "$file.stored") | wc -l)
    (( lost == 0 || $(now) >= deadline )) && break
    sleep 2
  done
  stored=$(wc -l <"$file.stored")
  unique=$(sort -u "$file.stored" | wc -l)
  dup=$(( stored - unique ))
  extra=$(comm -13 <(sort -u "$file.accepted") <(sort -u "$file.stored") | wc -l)
  printf '  %s: sent %d, accepted %d, refused %d, stored %d (listed %d), duplicated %d, lost %d, stored but not acknowledged %d\n' \
    "$label" "$FLOOD" "$accepted" "$(wc -l <"$file.refused")" "$unique" "$stored" "$dup" "$lost" "$extra" >&2
  COUNTS+=("$label: accepted $accepted, stored $unique, duplicated $dup, lost $lost")
  (( accepted > 0 )) || fail "$label: nothing accepted: $(head -n 3 "$file.refused")"
  (( extra == 0 )) || fail "$label: $extra envelopes stored that no answer accepted"
  (( dup == 0 )) || fail "$label: $dup envelopes listed more than once"
  (( lost == 0 )) || fail "$label: $lost accepted envelopes not stored after 180s"
}
COUNTS=()

# ------------------------------------------------------------------ stack
run_stack() {
  prepare
  step "swarm"
  local state
  state=$(docker info --format '{{.Swarm.LocalNodeState}}')
  if [[ $state != active ]]; then
    docker network inspect docker_gwbridge >/dev/null 2>&1 || GWBRIDGE_CREATED=1
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null || fail "docker swarm init failed"
    SWARM_CREATED=1
    ok "swarm initialised on 127.0.0.1"
  fi
  NODE_ID=$(docker info --format '{{.Swarm.NodeID}}')
  if [[ $(docker node inspect --format '{{index .Spec.Labels "pm.storage"}}' "$NODE_ID") != true ]]; then
    docker node update --label-add pm.storage=true "$NODE_ID" >/dev/null
    LABEL_ADDED=1
  fi
  [[ -z $(stack_services) ]] || fail "a stack named $STACK is already deployed; remove it or set PM_STACK_NAME"
  # What an earlier run killed before its cleanup may have left.
  local v
  for v in $(stack_volumes); do docker volume rm "$v" >/dev/null 2>&1 && note "removed leftover volume $v"; done
  docker secret ls -q --filter "label=$TEST_LABEL=$STACK" | xargs -r docker secret rm >/dev/null 2>&1 || true
  docker config ls -q --filter "label=$TEST_LABEL=$STACK" | xargs -r docker config rm >/dev/null 2>&1 || true

  step "keys, secret and config"
  cd "$WORK"
  pm keygen --out genesis.key >/dev/null
  pm pubkey --key genesis.key >genesis.pub
  pm keygen --out node.key >/dev/null
  local leftover
  for leftover in node_key genesis_key; do
    if docker secret inspect "$leftover" >/dev/null 2>&1 || docker config inspect "$leftover" >/dev/null 2>&1; then
      fail "a secret or config named $leftover exists already (not this run's); remove it first"
    fi
  done
  STACK_DEPLOYED=1   # from here on, cleanup removes what exists
  docker secret create --label "$TEST_LABEL=$STACK" node_key node.key >/dev/null
  docker config create --label "$TEST_LABEL=$STACK" genesis_key genesis.pub >/dev/null
  rm -f node.key
  ok "secret node_key, config genesis_key"

  step "stack deploy"
  export RABBITMQ_PASSWORD
  RABBITMQ_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' 'xy')
  export PM_GATEWAY_PORT=$GATEWAY_PORT PM_ROLES_CONSTRAINT='node.role == manager'
  export ELASTICSEARCH_JAVA_OPTS='-Xms512m -Xmx512m'
  local detach=()
  docker stack deploy --help 2>/dev/null | grep -q -- '--detach' && detach=(--detach=true)
  (cd "$ROOT" && docker stack deploy "${detach[@]}" --resolve-image never --prune \
      -c docker-compose.yml -c docker/stack-one-node.yml "$STACK") >"$WORK/deploy.log" 2>&1 \
    || fail "docker stack deploy: $(tail -n 5 "$WORK/deploy.log")"
  ok "$(grep -c '^Creating service' "$WORK/deploy.log") services"

  step "every service healthy, bootstrap complete"
  wait_healthy "$STACK_TIMEOUT"
  docker service ls --filter "label=com.docker.stack.namespace=$STACK" --format '  {{.Name}} {{.Replicas}} {{.Image}}' >&2
  local restarts
  restarts=$(docker service ps --filter desired-state=shutdown -q $(stack_services) 2>/dev/null | wc -l)
  ok "tasks that failed or restarted before convergence: $restarts"

  step "gateway answers on 127.0.0.1:$GATEWAY_PORT"
  wait_for_output 120 "the node persona through the gateway" pm persona --nickname teleferic >/dev/null
  ok "node persona stored"

  step "walkthrough (keygen, invite, register, assert, lookups)"
  walkthrough "$WORK/genesis.key"

  step "refusals, one per family"
  refusals "$WORK/genesis.key"

  step "scale writers to 3, authorizers to 2"
  docker service scale --detach "${STACK}_writer=3" "${STACK}_authorizer=2" >/dev/null
  wait_healthy 300
  ok "writer $(docker service ls --filter name="${STACK}_writer" --format '{{.Replicas}}'), authorizer $(docker service ls --filter name="${STACK}_authorizer" --format '{{.Replicas}}')"

  step "flood 1: $FLOOD assertions, 3 writers"
  local bob
  bob=$(new_sender "$WORK/genesis.key" bob)
  # Listed before the flood, or not yet indexed: the registration.
  list_sender "$(pm address --key "$bob")" "$WORK/flood1.before"
  cat "$WORK/bob.registration" >>"$WORK/flood1.before"
  flood "$bob" "$FLOOD" "$WORK/flood1"
  check_stored "$(pm address --key "$bob")" "$WORK/flood1" "flood 1 (3 writers)"

  step "flood 2: $FLOOD assertions, one writer killed mid-flood"
  local carol victim
  carol=$(new_sender "$WORK/genesis.key" carol)
  list_sender "$(pm address --key "$carol")" "$WORK/flood2.before"
  cat "$WORK/carol.registration" >>"$WORK/flood2.before"
  victim=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_writer" | head -n 1)
  [[ -n $victim ]] || fail "no writer container to kill"
  : >"$WORK/flood2.accepted"
  flood "$carol" "$FLOOD" "$WORK/flood2" &
  local flood_pid=$! waited=0
  # Kill once a quarter of the flood is accepted (bounded wait: 120 s).
  while (( $(wc -l <"$WORK/flood2.accepted") < FLOOD / 4 && waited < 600 )); do
    sleep 0.2
    waited=$((waited + 1))
  done
  docker kill "$victim" >/dev/null
  ok "killed writer container ${victim:0:12} after $(wc -l <"$WORK/flood2.accepted") accepted"
  wait "$flood_pid" || true
  check_stored "$(pm address --key "$carol")" "$WORK/flood2" "flood 2 (writer killed)"
  wait_healthy 300
  ok "the writer service is back to $(docker service ls --filter name="${STACK}_writer" --format '{{.Replicas}}')"

  step_end
  printf '\n== counts\n' >&2
  local c
  for c in "${COUNTS[@]}"; do printf '  %s\n' "$c" >&2; done
  stack_cleanup || exit 1
}

# -------------------------------------------------------------------- dev
run_dev() {
  [[ ${#STEPS[@]} -gt 0 ]] || prepare
  step "dev: docker-compose up (roles from the pm image)"
  cd "$WORK"
  mkdir -p "$WORK/genesis"
  pm keygen --out dev-genesis.key >/dev/null
  # The roles run as uid 10001: hand them the public half, readable.
  pm pubkey --key dev-genesis.key >"$WORK/genesis/genesis.key"
  chmod 0644 "$WORK/genesis/genesis.key"
  export PM_GENESIS_DIR="$WORK/genesis" PM_GATEWAY_PORT=$GATEWAY_PORT
  # Every host port away from the developer's servers and the lead's 8000-8003.
  export PM_AUTHORIZER_PORT=$((GATEWAY_PORT + 1)) PM_READER_PORT=$((GATEWAY_PORT + 2)) PM_WRITER_PORT=$((GATEWAY_PORT + 3))
  export PM_RABBITMQ_PORT=$((GATEWAY_PORT + 4)) PM_RABBITMQ_UI_PORT=$((GATEWAY_PORT + 5)) PM_ES_PORT=$((GATEWAY_PORT + 6))
  export PM_HBASE_THRIFT_PORT=$((GATEWAY_PORT + 7)) PM_HBASE_MASTER_INFO_PORT=$((GATEWAY_PORT + 8))
  DEV_COMPOSE=(-p "$STACK" -f "$ROOT/docker-compose-development.yml" -f "$ROOT/docker/development-prebuilt.yml")
  DEV_UP=1
  timeout 900 docker-compose "${DEV_COMPOSE[@]}" up -d --no-build >"$WORK/dev-up.log" 2>&1 \
    || { tail -n 20 "$WORK/dev-up.log" >&2; docker-compose "${DEV_COMPOSE[@]}" logs --tail 20 bootstrap >&2 || true;
         fail "docker-compose up"; }
  ok "up: $(grep -c 'Started\|done' "$WORK/dev-up.log" || true) containers"

  step "dev: every container healthy, bootstrap exited 0"
  local deadline=$(( $(now) + STACK_TIMEOUT )) pending
  while :; do
    pending=$(docker ps -a --filter "label=com.docker.compose.project=$STACK" --format '{{.Names}} {{.Status}}' \
                | grep -v 'bootstrap.*Exited (0)' | grep -v '(healthy)' || true)
    [[ -z $pending ]] && break
    (( $(now) < deadline )) || { echo "$pending" >&2; fail "dev: not healthy after ${STACK_TIMEOUT}s"; }
    sleep 3
  done
  ok "all healthy"

  step "dev: walkthrough"
  wait_for_output 120 "the node persona through the gateway" pm persona --nickname teleferic >/dev/null
  walkthrough "$WORK/dev-genesis.key"
  dev_cleanup || exit 1
}

case $MODE in
  stack) run_stack ;;
  dev) run_dev ;;
  all) run_stack; run_dev ;;
  *) echo "usage: $0 [stack|dev|all]" >&2; exit 2 ;;
esac
