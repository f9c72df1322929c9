#!/usr/bin/env bash
# Create .venv (if missing) and install deeprl into it. torch 2.13.0 (CPU) goes in first where torch is
# missing, so that no dependency pulls a multi-GB CUDA build. Extras: `bash scripts/install.sh dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python3 -m venv .venv
. .venv/bin/activate
python -c "import torch" 2>/dev/null || pip install --quiet "torch==2.13.0"
pip install --quiet -e ".${extras:+[$extras]}"
