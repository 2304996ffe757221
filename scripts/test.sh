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
echo "==> unit and route tests on SQLite"
python -m pytest tests/unit -q -p no:cacheprovider
echo "==> unit and route tests on PostgreSQL"
TEST_DATABASE=postgresql python -m pytest tests/unit -q -p no:cacheprovider
echo "==> browser tests (Playwright, Debian's Chromium) on SQLite"
python -m pytest tests/browser -q -p no:cacheprovider
echo "==> browser tests on PostgreSQL (the front-end budget, which does not touch the database, ran above)"
TEST_DATABASE=postgresql python -m pytest tests/browser -q -p no:cacheprovider -m "not frontend"
