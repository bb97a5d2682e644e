#!/usr/bin/env bash
# ctest script test: the float64 numpy reference (tests/reference/*.py) checks itself: safetensors
# reader, RoPE/YaRN/llama3 numbers worked out by hand, MoE routing on hand-made scores, naive vs
# absorbed MLA, causal masking, pairing conventions, and the CLI the engine's logits test calls.
# numpy is Debian's python3-numpy, visible to /usr/bin/python3 (scripts/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")"
PY=/usr/bin/python3
if ! "$PY" -c "import numpy" 2>/dev/null; then
  echo "reference_test: $PY cannot import numpy (apt-get install python3-numpy; see scripts/setup.sh)" >&2
  exit 1
fi
export PYTHONDONTWRITEBYTECODE=1
exec "$PY" reference_test.py
