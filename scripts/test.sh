#!/usr/bin/env bash
# Set everything up and run every test: lint, unit and route tests, then the browser tests —
# the tests twice, on SQLite and on PostgreSQL.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" --with-browser
started=$SECONDS
elapsed() { echo "    ($((SECONDS - started)) s since set-up)"; }

echo "==> ruff"
ruff check app tests bench migrations scripts
ruff format --check app tests bench migrations scripts
echo "==> mypy (services)"
mypy
elapsed
# One chain of tests per database, the two chains side by side (each test has its own database,
# Redis namespace and ports; the timing checks compare samples taken together): unit and route
# tests, then the browser tests. Then the front-end budget (axe, Lighthouse) alone, because its
# performance scores need the machine to itself. Each chain's output is printed when it ends.
mkdir -p var
chain() {  # chain <sqlite|postgresql>
  TEST_DATABASE="$1" python -m pytest tests/unit -q -p no:cacheprovider &&
    echo "    (unit tests ended $((SECONDS - started)) s after set-up)" &&
    TEST_DATABASE="$1" python -m pytest tests/browser -q -p no:cacheprovider -m "not frontend"
}
echo "==> unit, route and browser tests (Playwright, Debian's Chromium), on SQLite and on PostgreSQL side by side"
chain sqlite >var/tests-sqlite.log 2>&1 &
sqlite_chain=$!
chain postgresql >var/tests-postgresql.log 2>&1 &
postgresql_chain=$!
failed=0
wait "$sqlite_chain" || failed=1
echo "--- on SQLite"; cat var/tests-sqlite.log
wait "$postgresql_chain" || failed=1
echo "--- on PostgreSQL"; cat var/tests-postgresql.log
if [[ "$failed" != 0 ]]; then echo "tests failed (see above)" >&2; exit 1; fi
elapsed
echo "==> front-end budget (axe in both languages, Lighthouse), alone on the machine"
python -m pytest tests/browser -q -p no:cacheprovider -m frontend
elapsed
