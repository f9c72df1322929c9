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
. .venv/bin/activate
export SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy
ruff check src tests benchmarks
# Two workers, each given the next test as it finishes one (the modules marked xdist_group stay on one worker:
# their tests share a costly module fixture); the slowest tests are listed at the end, so the cost stays visible.
pytest -q -n "${PYTEST_WORKERS:-2}" --dist loadgroup --durations=25 "${subset[@]}" "$@"
