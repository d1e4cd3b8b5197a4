#!/usr/bin/env bash
# Peer environment for side-by-side benchmarks: TRL 1.16 in its own venv (never a dependency of lmforge),
# plus the deterministic tiny Llama from ../shared/bench/make_tiny.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
shared="${SHARED_BENCH:-$here/../../shared/bench}"
work="$here/_work"
mkdir -p "$work"
if [ ! -x "$work/trl-env/bin/python" ]; then
  python3 -m venv "$work/trl-env"
  "$work/trl-env/bin/pip" install -q torch==2.13.0 "trl==1.16.*" peft
fi
if [ ! -f "$work/tiny_llama/config.json" ]; then
  "$work/trl-env/bin/python" "$shared/make_tiny.py" "$work/tiny_llama" >&2
fi
echo "$work"
