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
# The page's tests drive headless Chromium. CI (CI=true, root, Debian) installs it here; elsewhere
# those tests skip and say how to install it (apt-get install chromium chromium-driver).
if [ "${CI:-}" = "true" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! command -v chromedriver >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
    || echo "setup.sh: could not install chromium and chromium-driver; the browser tests will skip" >&2
fi
.venv/bin/python -c "import deepfever, torch; print(f'deepfever {deepfever.__version__} with torch {torch.__version__} in .venv')"
