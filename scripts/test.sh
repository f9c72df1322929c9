#!/usr/bin/env bash
# Install deeprl with its test tools into .venv, then run the linter and the test suite.
#   bash scripts/test.sh          everything (what CI runs)
#   bash scripts/test.sh --fast   all but the learning runs, kill-and-resume and Ray (the day-to-day subset)
# Other arguments go to pytest: bash scripts/test.sh --fast tests/test_cli.py -k version
set -euo pipefail
cd "$(dirname "$0")/.."
subset=()
if [[ "${1:-}" == "--fast" ]]; then
    shift
    subset=(-m "not learning and not resume and not ray")
fi
bash scripts/install.sh dev
bash scripts/install-browser.sh  # Chromium, headless: the report tests open pages in it
. .venv/bin/activate
export SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy
ruff check src tests benchmarks
ruff format --check src tests benchmarks  # layout is the formatter's: `ruff format` fixes it
# Two workers: each starts on its share of the tests, which tests/conftest.py orders as an even part of the slow
# ones (longest first), then a file's tests that share a module fixture, then the rest; a worker whose share is done
# takes tests from the end of the other's. The slowest tests are listed at the end, so the cost stays visible.
pytest -q -n "${PYTEST_WORKERS:-2}" --dist worksteal --durations=25 "${subset[@]}" "$@"
