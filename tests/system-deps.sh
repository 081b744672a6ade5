#!/usr/bin/env bash
# The programs the tests start for real: redis-server, PostgreSQL (initdb, postgres, pg_isready,
# psql), Debian's chromium for the dashboard's browser test, and curl for the README's commands. `make test` runs this first.
# Present: nothing happens. Missing and root: installed with apt-get (Debian, Ubuntu).
# Missing and not root: one line saying what to run, and exit 1.
set -euo pipefail

pg_bin() {
    command -v "$1" >/dev/null 2>&1 && return 0
    for d in /usr/lib/postgresql/*/bin; do [ -x "$d/$1" ] && return 0; done
    return 1
}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
{ pg_bin initdb && pg_bin postgres && pg_bin pg_isready && pg_bin psql; } || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
command -v curl >/dev/null 2>&1 || missing+=(curl)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "make test: the tests start real servers and a browser; as root run: apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "make test: missing ${missing[*]} and no apt-get here: install them with this system's package manager" >&2
    exit 1
fi
echo "make test: installing ${missing[*]} with apt-get (the tests start them for real)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged services on install; the tests start their own on free ports.
