#!/usr/bin/env bash
# `make compose-test` (and .ci/run, after the pytest run): the compose stack, run for real.
#
# Needs root on Debian 12. Installs docker.io, docker-compose and debootstrap when missing, starts
# `dockerd` with its default settings when none is running (and stops that one at the end, also on
# failure), and builds local stand-ins for the two images the files name, because no container
# registry is reachable and nothing may pull:
#   python:3.11-slim  Debian 12 (debootstrap, minbase) + python3 + a venv at /usr/local, trusting
#                     the host's CA bundle and the host's http(s) pip index (pip.conf)
#   postgres:15       Debian 12 + postgresql-15 with the official image's POSTGRES_* variables
#                     and first-start initdb (deploy/standin/)
# The debootstrapped root file system is cached as a tarball in $INTAKE_COMPOSE_CACHE
# (/var/cache/intake-compose); INTAKE_COMPOSE_REFRESH=1 makes it again.
#
# Then, in a copy of the checkout with a .env made from .env.example (its dev block uncommented),
# `docker compose --profile dev up` (or Debian's docker-compose 1.29) and checks: migrate ran once
# and exited 0, a submission appended to the dev mailbox is answered (the dev SMTP capture), the
# worker's health check turns healthy, `intake status` inside the worker says healthy, the page
# answers on 127.0.0.1:8080, and `down -v` leaves no container, volume or network of the project.
# One PASS/FAIL line per check; exit status 0 only when all pass.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

export PATH="$PATH:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive

PROJECT=intake-compose-test
CACHE=${INTAKE_COMPOSE_CACHE:-/var/cache/intake-compose}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
BASE_IMAGE=intake-standin/debian:bookworm-minbase
ROOTFS_TAR=$CACHE/debian-bookworm-minbase.tar
PAGE=http://127.0.0.1:8080

failures=0
started_dockerd=""
compose_up=""
policy_made=""
WORK=$(mktemp -d /tmp/intake-compose.XXXXXX)
LOGS=$WORK/logs
mkdir -p "$LOGS"

say() { printf '%s [%4ds] %s\n' "==" "$SECONDS" "$*"; }
pass() { printf 'PASS: %s\n' "$*"; }
# A failed check is reported and counted; the script goes on to the next independent check and
# still tears the stack down, then exits non-zero.
fail() {
    printf 'FAIL: %s\n' "$*"
    failures=$((failures + 1))
}
# A failure the later steps cannot survive (no engine, no image, the stack did not come up).
die() {
    printf 'FAIL: %s\n' "$*"
    exit 1
}

# Runs a command with its output in $LOGS/NAME.log, shown (the end of it) only when it fails.
logged() {
    local name=$1
    shift
    "$@" >"$LOGS/$name.log" 2>&1 && return 0
    local rc=$?
    echo "--- last lines of $name ($*):"
    tail -n 40 "$LOGS/$name.log" | sed 's/^/    /'
    return "$rc"
}

compose() {
    "${COMPOSE[@]}" -p "$PROJECT" --profile dev "$@"
}

project_leftovers() {
    local label="label=com.docker.compose.project=$PROJECT"
    docker ps -aq --filter "$label"
    docker volume ls -q --filter "$label"
    docker network ls -q --filter "$label"
    # also by name, in case a compose version does not label something
    docker ps -aq --filter "name=^${PROJECT}[_-]"
    docker volume ls -q | grep -E "^${PROJECT}_" || true
    docker network ls --format '{{.Name}}' | grep -E "^${PROJECT}_" || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $compose_up ]]; then
        if ((rc != 0 || failures > 0)); then
            echo "--- docker compose ps / logs (the end of each service's log):"
            (cd "$WORK/src" && compose ps && compose logs --no-color --tail 40) 2>&1 \
                | sed 's/^/    /' || true
        fi
        say "tearing the stack down"
        (cd "$WORK/src" && compose down -v --remove-orphans --timeout 30) >/dev/null 2>&1 || true
    fi
    if [[ -n $started_dockerd ]]; then
        say "stopping the dockerd this script started (pid $started_dockerd)"
        kill -TERM "$started_dockerd" 2>/dev/null || true
        for _ in $(seq 60); do
            kill -0 "$started_dockerd" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$started_dockerd" 2>/dev/null; then
            echo "FAIL: dockerd (pid $started_dockerd) did not stop within 30 s"
            rc=1
        fi
    fi
    if [[ -n $policy_made ]]; then
        rm -f "$policy_made"
    fi
    rm -rf "$WORK"
    if ((rc == 0 && failures > 0)); then
        rc=1
    fi
    if ((rc == 0)); then
        echo "PASS: compose stack ($SECONDS s)"
    else
        echo "FAIL: compose stack ($failures failed checks, exit $rc, $SECONDS s)"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ $(id -u) != 0 ]]; then
    die "run as root (it installs Debian packages and starts dockerd)"
fi

# --- the tools --------------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
    missing+=(docker-compose)
fi
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if ((${#missing[@]})); then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    say "installing: ${missing[*]}"
    # A policy-rc.d answering 101 keeps docker.io's scripts from starting the system service:
    # this script starts dockerd itself and stops it at the end.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        policy_made=/usr/sbin/policy-rc.d
    fi
    logged apt-update apt-get update || die "apt-get update"
    logged apt-install apt-get install -y --no-install-recommends "${missing[@]}" \
        || die "apt-get install ${missing[*]}"
fi
if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
else
    COMPOSE=(docker-compose)
fi

# --- the engine -------------------------------------------------------------------------------
if docker info >/dev/null 2>&1; then
    say "using the running Docker engine"
else
    say "starting dockerd"
    dockerd >"$LOGS/dockerd.log" 2>&1 &
    started_dockerd=$!
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$started_dockerd" 2>/dev/null || break
        sleep 0.5
    done
    if ! docker info >/dev/null 2>&1; then
        tail -n 20 "$LOGS/dockerd.log" | sed 's/^/    /'
        die "dockerd did not start"
    fi
fi
pass "Docker engine $(docker version --format '{{.Server.Version}}'), $("${COMPOSE[@]}" version --short 2>/dev/null || "${COMPOSE[@]}" version | head -n 1)"

# --- the stand-in images ----------------------------------------------------------------------
make_rootfs() {
    local root=$WORK/rootfs
    say "debootstrap bookworm (minbase) from $MIRROR (cached in $ROOTFS_TAR afterwards)"
    logged debootstrap debootstrap --variant=minbase --include=ca-certificates \
        bookworm "$root" "$MIRROR" || return 1
    cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
EOF
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    mkdir -p "$CACHE"
    tar --numeric-owner -C "$root" -cf "$ROOTFS_TAR.tmp" . && mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    rm -rf "$root"
}

if [[ -n ${INTAKE_COMPOSE_REFRESH:-} ]]; then
    rm -f "$ROOTFS_TAR"
    docker image rm -f "$BASE_IMAGE" >/dev/null 2>&1 || true
fi
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    if [[ ! -s $ROOTFS_TAR ]]; then
        make_rootfs || die "debootstrap of Debian 12"
    fi
    logged import docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' "$ROOTFS_TAR" "$BASE_IMAGE" || die "docker import of the rootfs"
fi
pass "base image $BASE_IMAGE (Debian 12 minbase)"

# The host's pip settings that make sense inside a build: its CA bundle and http(s) indexes.
pip_setting() {
    python3 -m pip config get "global.$1" 2>/dev/null || true
}
web_urls() {
    tr ' ' '\n' | grep -E '^https?://' | tr '\n' ' ' || true
}
ctx=$WORK/python-context
mkdir -p "$ctx"
cp deploy/standin/python/Dockerfile "$ctx/"
bundle=${PIP_CERT:-$(pip_setting cert)}
[[ -s $bundle ]] || bundle=/etc/ssl/certs/ca-certificates.crt
[[ -s $bundle ]] || die "no CA bundle on the host (PIP_CERT, pip's global.cert or ca-certificates)"
cp "$bundle" "$ctx/ca-certificates.crt"
index=$(web_urls <<<"${PIP_INDEX_URL:-$(pip_setting index-url)}")
extra=$(web_urls <<<"${PIP_EXTRA_INDEX_URL:-$(pip_setting extra-index-url)}")
{
    echo "[global]"
    echo "cert = /usr/local/share/intake-standin/ca-certificates.crt"
    [[ -z ${index// /} ]] || echo "index-url = ${index% }"
    [[ -z ${extra// /} ]] || echo "extra-index-url = ${extra% }"
} >"$ctx/pip.conf"

# The images a rebuild replaces are removed afterwards (only those, and only when untagged), so
# repeated runs do not pile up old stand-ins in /var/lib/docker.
image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
replaced=()
for image in intake:latest postgres:15 python:3.11-slim; do  # children first
    old=$(image_id "$image")
    [[ -z $old ]] || replaced+=("$old")
done

say "building python:3.11-slim (stand-in)"
logged build-python docker build --build-arg "BASE=$BASE_IMAGE" -t python:3.11-slim "$ctx" \
    || die "building the python:3.11-slim stand-in"
version=$(docker run --rm python:3.11-slim python --version) || die "python:3.11-slim: no python"
pass "python:3.11-slim stand-in: $version"

say "building postgres:15 (stand-in)"
logged build-postgres docker build --build-arg "BASE=$BASE_IMAGE" -t postgres:15 \
    deploy/standin/postgres || die "building the postgres:15 stand-in"
version=$(docker run --rm postgres:15 postgres --version) || die "postgres:15: no postgres"
pass "postgres:15 stand-in: $version"

# --- the stack --------------------------------------------------------------------------------
if [[ -n $(project_leftovers) ]]; then
    die "containers, volumes or networks of project $PROJECT exist already (an earlier run?)"
fi

# A copy of the checkout, so the .env below never touches the user's own.
mkdir -p "$WORK/src"
tar -C "$REPO" --exclude=./.git --exclude=./.env --exclude=./var --exclude=./var-demo \
    --exclude='__pycache__' --exclude=./tests/artifacts -cf - . | tar -C "$WORK/src" -xf -
cd "$WORK/src"
secret() { od -An -N18 -tx1 /dev/urandom | tr -d ' \n'; }
token=$(secret)
# .env.example as it stands, with its dev block uncommented (a later line wins in an env file)
awk '/^# --- profile "dev"/ { dev = 1 } dev && /^# INTAKE_/ { sub(/^# /, "") } { print }' \
    .env.example >.env
{
    echo "POSTGRES_PASSWORD=$(secret)"
    echo "INTAKE_WEB__TOKEN=$token"
} >>.env

say "building the intake image"
logged build-intake compose build migrate || die "docker compose build (the Dockerfile)"
pass "intake image built from the Dockerfile"

for old in "${replaced[@]}"; do
    if [[ -z $(docker image inspect -f '{{join .RepoTags ","}}' "$old" 2>/dev/null) ]]; then
        docker image rm "$old" >/dev/null 2>&1 || true
    fi
done

say "docker compose --profile dev up -d"
compose_up=1
logged up timeout 300 "${COMPOSE[@]}" -p "$PROJECT" --profile dev up -d \
    || die "docker compose --profile dev up -d"
pass "stack up: $(compose ps --services 2>/dev/null | sort | tr '\n' ' ')"

cid() {
    docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=$1"
}

# migrate: one container, exited 0, never restarted; the worker started after it
mapfile -t migrate < <(cid migrate)
if ((${#migrate[@]} != 1)); then
    fail "migrate: expected one container, found ${#migrate[@]}"
else
    state=$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}' "${migrate[0]}")
    if [[ $state == "exited 0 0" ]]; then
        pass "migrate ran once and exited 0 ($(docker logs "${migrate[0]}" 2>&1 | tail -n 1))"
    else
        fail "migrate: state/exit code/restarts = $state"
    fi
fi

worker=$(cid worker)
devmail=$(cid devmail)
[[ -n $worker && -n $devmail ]] || die "no worker or devmail container"

# the worker's first cycle (the seeded sample mail) is done before the submission arrives, so the
# submission is picked up by the running worker (IDLE), not by its first poll
first=""
for _ in $(seq 120); do
    first=$(docker exec "$worker" intake status --file --json 2>/dev/null \
        | python3 -c 'import json, sys; print(json.load(sys.stdin).get("last_success_at") or "")' \
        2>/dev/null || true)
    [[ -n $first ]] && break
    sleep 1
done
if [[ -n $first ]]; then
    pass "the worker's first poll succeeded ($first)"
else
    fail "no successful poll in the worker's health file within 120 s"
fi

# a submission appended to the dev mailbox is answered
sender=$(docker exec -i "$devmail" python - <"$REPO/deploy/compose_submit.py" 2>"$LOGS/submit.log") \
    || { cat "$LOGS/submit.log"; sender=""; }
if [[ -z $sender ]]; then
    fail "appending a submission to the dev mailbox"
else
    reply=""
    for _ in $(seq 180); do
        reply=$(docker logs "$devmail" 2>&1 | grep -F "smtp: to=$sender " | head -n 1 || true)
        [[ -n $reply ]] && break
        sleep 1
    done
    if [[ $reply == *" kind=acknowledgement "* ]]; then
        pass "submission from $sender answered: ${reply#smtp: }"
    elif [[ -n $reply ]]; then
        fail "the submission from $sender was answered, but not with an acknowledgement: $reply"
    else
        fail "no reply to $sender within 180 s"
    fi
fi

# the worker's own health check (interval 60 s) turns healthy
health=""
for _ in $(seq 100); do
    health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$worker")
    [[ $health == starting ]] || break
    sleep 3
done
if [[ $health == healthy ]]; then
    pass "worker container healthy (intake status --file)"
else
    fail "worker container health: ${health:-none}"
    docker inspect -f '{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}{{end}}' "$worker" \
        2>/dev/null | tail -n 5 | sed 's/^/    /' || true
fi
restarts=$(docker inspect -f '{{.RestartCount}}' "$worker")
[[ $restarts == 0 ]] || fail "the worker restarted $restarts times"

if status=$(docker exec "$worker" intake status --json 2>&1); then
    if outbox=$(python3 -c '
import json, sys
health = json.loads(sys.stdin.read())
assert health["healthy"] is True
print(" ".join(f"{k}={v}" for k, v in sorted(health["outbox"].items())))' <<<"$status" 2>/dev/null)
    then
        pass "intake status inside the worker: healthy (outbox: ${outbox:-empty})"
    else
        fail "intake status inside the worker exited 0 but does not say healthy: $status"
    fi
else
    fail "intake status inside the worker: exit $? $status"
fi

# the page on the loopback address
if page=$(python3 - "$PAGE" "$token" 2>&1 <<'EOF'
import sys
import urllib.request

base, token = sys.argv[1], sys.argv[2]
with urllib.request.urlopen(base + "/healthz", timeout=10) as r:
    assert r.status == 200, r.status
request = urllib.request.Request(base + "/", headers={"Authorization": f"Bearer {token}"})
with urllib.request.urlopen(request, timeout=20) as r:
    body = r.read().decode("utf-8")
    assert r.status == 200, r.status
    assert "<html" in body.lower(), body[:200]
print(f"/healthz 200, / {r.status} ({len(body)} characters)")
EOF
); then
    pass "page on $PAGE: $page"
else
    fail "page on $PAGE: $page"
fi

# down -v leaves nothing of the project behind
say "docker compose down -v"
if logged down compose down -v --remove-orphans --timeout 30; then
    compose_up=""
    left=$(project_leftovers | sort -u | tr '\n' ' ')
    if [[ -z ${left// /} ]]; then
        pass "down -v: no container, volume or network of $PROJECT left"
    else
        fail "down -v left: $left"
    fi
else
    fail "docker compose down -v"
fi
