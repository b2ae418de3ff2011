#!/usr/bin/env bash
# Create (or reuse) the virtual environment .venv/ at the repository root and install DeepFEVER
# with its test tools. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
python_bin=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python_bin" -m venv .venv
fi
# The CPU wheel of PyTorch first, so nothing later pulls a multi-GB CUDA build. On machines that
# carry torch 2.13.0 on local disk pip takes it from there; elsewhere pip resolves torch normally.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/python -m pip install --quiet "torch==2.13.0" \
    || echo "setup.sh: torch==2.13.0 not available here; pip will install the torch your platform offers" >&2
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
.venv/bin/python -c "import deepfever, torch; print(f'deepfever {deepfever.__version__} with torch {torch.__version__} in .venv')"
