#!/bin/sh
# JupyterLab for ToolMaster Lab, with marimo in its launcher running in the lab's own environment.
# `make jupyter` runs this with the lab's .venv; tests/test_jupyter.py starts its server through it too.
#
#   jupyter/start.sh [jupyter lab options]      e.g. --port 8890 --no-browser
#
# It serves the repository folder (marimo's working directory too, so runs/ lands where `make lab` puts it),
# opens the file browser at notebooks/ and listens on 127.0.0.1 only. The marimo settings come from
# jupyter_server_config.py in this folder, which JUPYTER_CONFIG_PATH puts first among Jupyter's config
# folders (your own Jupyter settings still apply). The Python is $LAB_PYTHON, else .venv/bin/python,
# else python3 on PATH.
set -eu
cd "$(dirname "$0")/.."
if [ -n "${LAB_PYTHON:-}" ]; then
    # Asked for by name: a wrong path is an error, not a reason to run some other Python.
    [ -x "$LAB_PYTHON" ] || { echo "jupyter/start.sh: LAB_PYTHON=$LAB_PYTHON is not an executable Python" >&2; exit 2; }
    python=$LAB_PYTHON
elif [ -x .venv/bin/python ]; then
    python=.venv/bin/python
else
    python=python3
fi
JUPYTER_CONFIG_PATH="$PWD/jupyter${JUPYTER_CONFIG_PATH:+:$JUPYTER_CONFIG_PATH}"
export JUPYTER_CONFIG_PATH
exec "$python" -m jupyterlab \
    --ServerApp.ip=127.0.0.1 \
    --ServerApp.root_dir=. \
    --LabApp.default_url=/lab/tree/notebooks \
    "$@"
