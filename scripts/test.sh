#!/usr/bin/env bash
# Set everything up and run every test: lint, unit and route tests, then the browser tests —
# the tests twice, on SQLite and on PostgreSQL.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" --with-browser

echo "==> ruff"
ruff check app tests bench migrations scripts
ruff format --check app tests bench migrations scripts
echo "==> mypy (services)"
mypy
# The two databases' unit runs go side by side (each test has its own database, Redis namespace
# and ports; the timing checks compare samples taken together), which saves about 5 minutes on
# 2 cores. Each run's output is printed when it ends.
echo "==> unit and route tests on SQLite and on PostgreSQL (side by side)"
mkdir -p var
python -m pytest tests/unit -q -p no:cacheprovider >var/unit-sqlite.log 2>&1 &
sqlite_run=$!
TEST_DATABASE=postgresql python -m pytest tests/unit -q -p no:cacheprovider >var/unit-postgresql.log 2>&1 &
postgresql_run=$!
unit_failed=0
wait "$sqlite_run" || unit_failed=1
echo "--- unit tests on SQLite"; cat var/unit-sqlite.log
wait "$postgresql_run" || unit_failed=1
echo "--- unit tests on PostgreSQL"; cat var/unit-postgresql.log
if [[ "$unit_failed" != 0 ]]; then echo "unit tests failed (see above)" >&2; exit 1; fi
echo "==> browser tests (Playwright, Debian's Chromium) on SQLite"
python -m pytest tests/browser -q -p no:cacheprovider
echo "==> browser tests on PostgreSQL (the front-end budget, which does not touch the database, ran above)"
TEST_DATABASE=postgresql python -m pytest tests/browser -q -p no:cacheprovider -m "not frontend"
