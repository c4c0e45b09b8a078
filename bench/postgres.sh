#!/usr/bin/env bash
# bench/postgres.sh — the whole-service benchmark with the PostgreSQL
# reference handler (bench/pgref) as a target: installs PostgreSQL from
# Debian's packages if it is missing, starts a throwaway cluster (initdb in a
# temporary directory, 127.0.0.1 on a free port, fsync and
# synchronous_commit on), runs bench/compare with -pg-dsn pointing at it, then
# stops the cluster and removes its directory. Never part of `make test`.
#
#   bench/postgres.sh [bench/compare flags…]      # e.g. -n 20000 -rounds 2
#
# Expects bin/fcaudit, bin/refserver and bin/pgref (`make bench-pg` builds
# them). Runs the cluster as the "postgres" user when started as root
# (initdb refuses root). Authentication is "trust": the cluster listens on
# loopback only, lives for one run and holds only benchmark events.
set -euo pipefail
cd "$(dirname "$0")/.." # the repository root: relative paths below and in the flags are from there

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
if [ -z "$(pg_bin)" ]; then
	echo "postgres.sh: installing PostgreSQL from Debian's packages" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >&2
	apt-get install -y -q postgresql >&2
fi
PGBIN=$(pg_bin)
[ -x "$PGBIN/initdb" ] || { echo "postgres.sh: no initdb under /usr/lib/postgresql" >&2; exit 1; }

as_pg=()
if [ "$(id -u)" = 0 ]; then
	as_pg=(runuser -u postgres --)
fi

tmp=$(mktemp -d /tmp/fcaudit-pg-XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres: "$tmp"
started=
cleanup() {
	if [ -n "$started" ]; then
		"${as_pg[@]}" "$PGBIN/pg_ctl" -D "$tmp/data" -m fast -w stop >/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# A free loopback port: no socket on it at all, TIME-WAIT included (a
# previous run's cluster leaves those, and they make its bind fail).
port=
base=$((55432 + RANDOM % 2000))
for p in $(seq "$base" $((base + 200))); do
	if command -v ss >/dev/null; then
		[ -z "$(ss -Htan "( sport = :$p or dport = :$p )")" ] && { port=$p; break; }
	elif ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		port=$p; break
	fi
done
[ -n "$port" ] || { echo "postgres.sh: no free port in $base–$((base + 200))" >&2; exit 1; }

"${as_pg[@]}" "$PGBIN/initdb" -D "$tmp/data" -U bench -A trust -E UTF8 --no-instructions >"$tmp/initdb.log" 2>&1 ||
	{ cat "$tmp/initdb.log" >&2; exit 1; }
# Durable settings spelled out (they are PostgreSQL's defaults): every
# commit's WAL is flushed with fsync before the client is answered.
"${as_pg[@]}" "$PGBIN/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 60 start -o \
	"-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$tmp -c fsync=on -c synchronous_commit=on -c full_page_writes=on -c wal_sync_method=fdatasync -c max_connections=200" >/dev/null ||
	{ cat "$tmp/server.log" >&2; exit 1; }
started=1
echo "postgres.sh: PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $tmp, removed afterwards)" >&2

go run ./bench/compare -pgref bin/pgref -pg-dsn "postgres://bench@127.0.0.1:$port/postgres?sslmode=disable" "$@"
