#!/usr/bin/env bash
# Peer environment for side-by-side benchmarks: TRL 1.16 in its own venv (never a dependency of lmforge),
# plus the deterministic tiny Llama from ../shared/bench/make_tiny.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
shared="${SHARED_BENCH:-$here/../../shared/bench}"
work="$here/_work"
mkdir -p "$work"
# TRL_VENV=DIR: use an existing venv that already has trl 1.16 (linked, not copied) instead of building one
if [ ! -e "$work/trl-env" ] && [ -n "${TRL_VENV:-}" ]; then
  "$TRL_VENV/bin/python" -c 'import trl, sys; sys.exit(not trl.__version__.startswith("1.16"))' >&2
  ln -s "$(cd "$TRL_VENV" && pwd)" "$work/trl-env"
fi
if [ ! -x "$work/trl-env/bin/python" ]; then
  python3 -m venv "$work/trl-env"
  "$work/trl-env/bin/pip" install -q torch==2.13.0 "trl==1.16.*" peft
fi
if [ ! -f "$work/tiny_llama/config.json" ]; then
  "$work/trl-env/bin/python" "$shared/make_tiny.py" "$work/tiny_llama" >&2
fi
echo "$work"
