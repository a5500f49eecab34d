#!/usr/bin/env bash
# Starts a throw-away PostgreSQL cluster on 127.0.0.1 with password authentication and prints
# `export VAR=...` lines for the PostgreSQL tests:
#
#   eval "$(ci/pg-server.sh)"        # then: cargo test --workspace ; ci/pg-server.sh stop
#
# The cluster is initialised by an unprivileged user (initdb refuses root): the invoking user,
# or `postgres` (PERSIST_PG_OS_USER) when run as root. It listens on 127.0.0.1 only, on a free
# port (PERSIST_PG_PORT), with scram-sha-256 passwords; the superuser `persist` gets a random
# password. Database `persist_test` is created. Everything but the exports goes to stderr.
# `ci/pg-server.sh stop` stops the cluster the exports describe ($PERSIST_PG_DATA).
set -euo pipefail

bindir=${PERSIST_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
if [[ -z "$bindir" || ! -x "$bindir/initdb" ]]; then
    echo "pg-server.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
    exit 1
fi
as_user=()
if [[ $(id -u) -eq 0 ]]; then
    as_user=(runuser -u "${PERSIST_PG_OS_USER:-postgres}" --)
fi

if [[ "${1:-}" == stop ]]; then
    "${as_user[@]}" "$bindir/pg_ctl" -D "$PERSIST_PG_DATA" -m fast stop >&2
    exit 0
fi

dir=$(mktemp -d /tmp/persist-pg.XXXXXX)
chmod 755 "$dir"
[[ ${#as_user[@]} -gt 0 ]] && chown "${PERSIST_PG_OS_USER:-postgres}" "$dir"
port=${PERSIST_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
password=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$password" > "$dir/pw"
[[ ${#as_user[@]} -gt 0 ]] && chown "${PERSIST_PG_OS_USER:-postgres}" "$dir/pw"
"${as_user[@]}" "$bindir/initdb" -D "$dir/data" -U persist --pwfile="$dir/pw" \
    --auth=scram-sha-256 -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
rm -f "$dir/pw"
"${as_user[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir" start >&2
PGPASSWORD=$password "$bindir/psql" -q -h 127.0.0.1 -p "$port" -U persist -d postgres \
    -c "CREATE DATABASE persist_test" >&2
echo "pg-server.sh: PostgreSQL on 127.0.0.1:$port, data $dir/data, log $dir/server.log" >&2
echo "export PERSIST_PG_URL=postgres://persist:$password@127.0.0.1:$port/persist_test"
echo "export PERSIST_PG_DATA=$dir/data"
echo "export PERSIST_PG_BIN=$bindir"
