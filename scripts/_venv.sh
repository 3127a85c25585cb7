# Sourced by scripts/demo and scripts/test: make (or reuse) .venv and install the project.
# Usage: . scripts/_venv.sh EXTRAS   (EXTRAS: "", or "[test,bench]" for the tests and the benchmarks they smoke-run)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python="${PYTHON:-python3}"
"$python" - <<'PY' || { echo "mimi_reactive needs Python 3.11 or newer (set PYTHON=...)" >&2; exit 1; }
import sys
sys.exit(sys.version_info < (3, 11))
PY
# Which interpreter a Python is built on: its version and its real base executable, so a
# venv and the Python that would make it compare equal.
identify='import os, sys
base = getattr(sys, "_base_executable", "") or sys.executable
print("Python %d.%d (%s)" % (*sys.version_info[:2], os.path.realpath(base)))'
wanted="$("$python" -c "$identify")"
if [ -e .venv ]; then
    # A broken venv (its interpreter gone) identifies as nothing, and is rebuilt too.
    built="$(.venv/bin/python -c "$identify" 2>/dev/null || echo "an interpreter that is gone")"
    if [ "$built" != "$wanted" ]; then
        echo "scripts: .venv was built with $built; rebuilding it with $wanted" >&2
        "$python" -m venv --clear .venv
    fi
else
    "$python" -m venv .venv
fi
# Quiet: setuptools' editable-install notices are Python warnings, which --quiet lets through.
export PYTHONWARNINGS=ignore
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".$1"
unset PYTHONWARNINGS
