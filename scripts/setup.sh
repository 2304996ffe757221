#!/usr/bin/env bash
# Shared set-up for scripts/dev.sh and scripts/test.sh: system packages, Redis, the virtualenv.
# Usage: source scripts/setup.sh [--with-browser]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WITH_BROWSER=0
for arg in "$@"; do [[ "$arg" == "--with-browser" ]] && WITH_BROWSER=1; done

SUDO=""
if [[ "$(id -u)" != "0" ]]; then SUDO="sudo"; fi

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "Python 3.11 or newer is needed (found: $("$PYTHON" --version 2>&1)). Set PYTHON=/path/to/python3.11." >&2
  exit 1
fi

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
"$PYTHON" -m venv --help >/dev/null 2>&1 || need_apt+=(python3-venv)
if [[ "$WITH_BROWSER" == "1" ]] && ! command -v chromium >/dev/null 2>&1; then need_apt+=(chromium); fi
if (( ${#need_apt[@]} )); then
  echo "==> installing system packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export REDIS_URL
if ! "$PYTHON" - "$REDIS_URL" <<'PY' >/dev/null 2>&1
import socket, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
s = socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=2)
s.sendall(b"PING\r\n"); assert s.recv(16).startswith(b"+PONG")
PY
then
  echo "==> starting Redis on 127.0.0.1:6379"
  mkdir -p var
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "$ROOT/var" --logfile "$ROOT/var/redis.log"
  for _ in $(seq 1 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

# PostgreSQL for the second run of the tests (TEST_DATABASE=postgresql): the server at
# TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres, trust auth), started here
# from Debian's package where none answers.
if [[ "${WITH_POSTGRES:-1}" == "1" ]] && ! "$PYTHON" - <<'PY' >/dev/null 2>&1
import os, socket, urllib.parse
u = urllib.parse.urlparse(os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
socket.create_connection((u.hostname or "127.0.0.1", u.port or 5432), timeout=2).close()
PY
then
  echo "==> installing and starting PostgreSQL (trust auth on 127.0.0.1, for the tests)"
  command -v pg_ctlcluster >/dev/null 2>&1 || {
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
  }
  version="$(ls /etc/postgresql | sort -V | tail -1)"
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! $SUDO grep -q "^host all all 127.0.0.1/32 trust" "$hba"; then
    $SUDO sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  fi
  $SUDO pg_ctlcluster "$version" main start || $SUDO pg_ctlcluster "$version" main reload
  for _ in $(seq 1 50); do pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 && break; sleep 0.2; done
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "==> creating the virtualenv in .venv"
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
STAMP=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [[ ! -f "$STAMP" ]]; then
  echo "==> installing the app and its test tools"
  python -m pip install -q --upgrade pip
  python -m pip install -q -e ".[test]"
  touch "$STAMP"
fi

# Lighthouse (npm, pinned in tests/lighthouse/package-lock.json) for the front-end budget test.
if [[ "$WITH_BROWSER" == "1" ]]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "==> installing Node.js and npm (for Lighthouse)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
  fi
  LH_STAMP="tests/lighthouse/node_modules/.installed-$(sha256sum tests/lighthouse/package-lock.json | cut -c1-16)"
  if [[ ! -f "$LH_STAMP" ]]; then
    echo "==> installing Lighthouse (npm ci --prefix tests/lighthouse)"
    npm ci --prefix tests/lighthouse --no-audit --no-fund --loglevel=error
    touch "$LH_STAMP"
  fi
fi
