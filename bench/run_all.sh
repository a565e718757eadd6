#!/bin/sh
# Every benchmark at its reduced size, one table of figures (see bench/run_all.py).
cd "$(dirname "$0")/.." || exit 2
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
exec "$PY" bench/run_all.py "$@"
