#!/usr/bin/env bash
# Install deeprl with its test tools into .venv, then run the linter and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
. .venv/bin/activate
export SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy
ruff check src tests benchmarks
# Two workers, a test file each: most tests wait on a deeprl subprocess, which left one of two cores idle
pytest -q -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
