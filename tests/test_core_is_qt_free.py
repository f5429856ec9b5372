"""`sgm_core` is the Qt-free half of the one-way split: importing every module of it, in a fresh
interpreter, loads no Qt binding, no pyqtgraph and nothing from the `app` package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = ("PySide6", "shiboken6", "pyqtgraph", "app", "PyQt5", "PyQt6")
SUBPROCESS_TIMEOUT_S = 120  # a cold interpreter importing torch on a busy 2-core machine

PROBE = """
import importlib, json, pkgutil, sys
import sgm_core
names = ["sgm_core"] + [m.name for m in pkgutil.walk_packages(sgm_core.__path__, "sgm_core.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names, "loaded": sorted(sys.modules)}))
"""


def test_importing_every_core_module_loads_no_qt() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"sgm_core.cli", "sgm_core.training", "sgm_core.samplers", "sgm_core.gmm"} <= set(report["imported"])
    leaked = [m for m in report["loaded"] if m.split(".")[0] in FORBIDDEN]
    assert leaked == [], f"importing sgm_core pulled in {leaked}"


def test_the_compare_worker_draws_nothing_so_loads_no_pyqtgraph() -> None:
    """The compare runs' worker projects 3D fields with the pure `app.views.geometry`, not a view module."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    probe = "import sys, app.compare_worker; print('pyqtgraph' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
