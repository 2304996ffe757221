#!/usr/bin/env bash
# Set everything up and run the app with the demo library: migrations, demo data, web server,
# worker, Redis (when none is running) and a development mailbox. Ctrl-C stops them all.
set -euo pipefail
WITH_POSTGRES="${WITH_POSTGRES:-0}"  # the development server uses SQLite unless DATABASE_URL says otherwise
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

export APP_ENV="${APP_ENV:-development}"
export SMTP_HOST="${SMTP_HOST:-127.0.0.1}" SMTP_PORT="${SMTP_PORT:-1025}"
HOST="${HOST:-127.0.0.1}" PORT="${PORT:-8000}"

python -m app migrate
python -m app demo-data >/dev/null

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

python -m app mailbox --port "$SMTP_PORT" > var/mailbox.log 2>&1 & pids+=($!)
python -m app worker > var/worker.log 2>&1 & pids+=($!)
python -m app serve --host "$HOST" --port "$PORT" > var/web.log 2>&1 & pids+=($!)

for _ in $(seq 1 100); do
  python -c "import urllib.request,sys; urllib.request.urlopen('http://$HOST:$PORT/healthz', timeout=1)" 2>/dev/null && break
  sleep 0.2
done

cat <<MSG

  My Library is running at  http://$HOST:$PORT/
  Mail it sends is kept in   var/mailbox/  (log: var/mailbox.log)
  Logs: var/web.log, var/worker.log

  Demo log-ins (card number / password):
    100000017 / hanako-2026   山田 花子 — three loans, one renewable
    100000025 / taro-2026     鈴木 太郎 — one loan three days overdue
    100000033 / temp-1234     temporary password: must choose a new one
    100000041 / jiro-2026     card expired yesterday
    100000058 / (none)        no password yet
    staff: counter / counter-2026

  Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}"
