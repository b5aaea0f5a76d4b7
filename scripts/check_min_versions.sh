#!/usr/bin/env bash
# The lower bounds in pyproject.toml are true: install each dependency at its minimum into a fresh
# virtual environment (VENV, default /tmp/diverse-embed-min) and run the fast tier against this
# checkout. About 3 GB of downloads (torch's CUDA wheels) the first time; the tests take ~1 minute.
#
#     scripts/check_min_versions.sh [VENV]
#
# Last run (2026-12-07, Python 3.11, 2-core CPU): 299 passed, 18 skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-/tmp/diverse-embed-min}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet \
  "numpy==1.25.*" "torch==2.6.0" "torchaudio==2.6.0" "soundfile==0.12.1" "safetensors==0.4.0" \
  "huggingface_hub==0.25.0" "tqdm==4.60.0" "faiss-cpu==1.7.4" "scikit-learn==1.2.*" "scipy==1.9.*" \
  "pyarrow==14.0.*" "ray[data]==2.10.0" "pandas==2.0.*" "pytest==7.3.*" "hypothesis"
# Ray pulls a newer numpy; the minimum goes back in last.
"$venv/bin/python" -m pip install --quiet "numpy==1.25.*"
PYTHONPATH="$PWD" "$venv/bin/python" -m pytest -m "not slow" -q -p no:cacheprovider
