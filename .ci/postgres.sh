#!/usr/bin/env bash
# Starts a throw-away PostgreSQL for the test suite (installing it from Debian's packages when
# absent) and prints the URL to export as KIZUNA_TEST_POSTGRES_URL. Usage: eval "$(.ci/postgres.sh)"
set -euo pipefail
port=${KIZUNA_PG_PORT:-55432}
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >&2
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
data=$(mktemp -d /tmp/kizuna-pg.XXXXXX)
run_as=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$data"
  run_as=(runuser -u postgres --)
fi
"${run_as[@]}" "$bin/initdb" -D "$data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
"${run_as[@]}" "$bin/pg_ctl" -D "$data" -l "$data/log" -w \
  -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off" start >&2
echo "export KIZUNA_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
echo "export KIZUNA_TEST_PGDATA=$data"
