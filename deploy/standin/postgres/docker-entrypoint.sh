#!/usr/bin/env bash
# The official postgres image's entrypoint, reduced to what intake's compose file uses: as root,
# fix PGDATA's ownership and re-exec as postgres; on the first start (no PG_VERSION) initdb with
# POSTGRES_USER and POSTGRES_PASSWORD, create POSTGRES_DB, run /docker-entrypoint-initdb.d; then
# exec postgres listening on every address, password (scram-sha-256) required over TCP.
set -Eeuo pipefail

if [[ ${1:-} == -* ]]; then
    set -- postgres "$@"
fi

if [[ ${1:-} != postgres ]]; then
    exec "$@"
fi
for arg in "$@"; do  # `postgres --version` and the like need no database (as upstream)
    case $arg in
        -'?' | --help | --describe-config | -V | --version | -C) exec "$@" ;;
    esac
done

if [[ $(id -u) == 0 ]]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    chmod 2777 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
export POSTGRES_USER POSTGRES_DB

if [[ ! -s $PGDATA/PG_VERSION ]]; then
    if [[ -z ${POSTGRES_PASSWORD:-} && $POSTGRES_HOST_AUTH_METHOD != trust ]]; then
        echo "error: database is uninitialized and superuser password is not specified." >&2
        echo "       set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust)" >&2
        exit 1
    fi
    pwfile=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
    # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of words, as upstream
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
        --auth-host="$POSTGRES_HOST_AUTH_METHOD" ${POSTGRES_INITDB_ARGS:-}
    rm -f "$pwfile"
    printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
    printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

    # A private socket while initialising: pg_isready (the health check) must not call the
    # database ready before POSTGRES_DB exists and the server listens on TCP.
    initsock=$(mktemp -d)
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -k $initsock" start
    psql=(psql -v ON_ERROR_STOP=1 -h "$initsock" --username "$POSTGRES_USER" --no-password)
    if [[ $POSTGRES_DB != postgres ]]; then
        exists=$("${psql[@]}" --dbname postgres -tA -v db="$POSTGRES_DB" \
            <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")
        if [[ -z $exists ]]; then
            "${psql[@]}" --dbname postgres -v db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
        fi
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case $f in
            *.sh) echo "running $f"; . "$f" ;;
            *.sql) echo "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) echo "running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
            *) if [[ -e $f ]]; then echo "ignoring $f"; fi ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    rmdir "$initsock"
    echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
