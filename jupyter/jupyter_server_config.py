"""Jupyter Server settings for ToolMaster Lab: marimo notebooks inside JupyterLab.

marimo-jupyter-extension (installed with the lab's dev extra) puts marimo in JupyterLab's launcher and serves
it under <base url>/marimo/ through jupyter-server-proxy. Its defaults do not suit the lab: every marimo
notebook would run in a fresh uv sandbox that downloads packages and cannot import labkit. These settings
start marimo from the server's own environment instead.

`make jupyter` (jupyter/start.sh) loads it by putting this folder first on JUPYTER_CONFIG_PATH. On JupyterHub,
do the same for the single-user servers in jupyterhub_config.py:

    c.Spawner.environment = {"JUPYTER_CONFIG_PATH": "/path/to/toolmaster-lab/jupyter"}

or copy this file to `<env>/etc/jupyter/jupyter_server_config.py` of the Python environment that runs them
(merge it into any file already there). That environment needs the lab installed: `pip install -e '.[dev]'`.
"""

import sys
from pathlib import Path

c = get_config()  # noqa: F821 (provided by Jupyter when it loads this file)

# No sandbox: marimo and its kernels run in this Python environment, where labkit is installed.
# (None disables it in marimo-jupyter-extension 0.5; `no_sandbox = True` is its deprecated alias.)
c.MarimoProxyConfig.sandbox = None

# This environment's marimo, not whichever one comes first on PATH (a venv's bin/ is often not on it).
_marimo = Path(sys.executable).parent / "marimo"
if _marimo.is_file():
    c.MarimoProxyConfig.marimo_path = str(_marimo)

# Workshops may be offline: do not ask PyPI for a newer marimo.
c.MarimoProxyConfig.skip_update_check = True

# Nor JupyterLab: no news feed (it would offer to fetch one from the internet) and no check for a newer release.
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
