# SPDX-License-Identifier: MIT
"""The package installs offline with Debian's python3, pip and setuptools,
both ways the README gives, and the installed copy works."""
import os
import shutil
import subprocess
import sys

import pytest

PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 300
USE = """
import shmkeeper, sys
assert shmkeeper.__file__.startswith(sys.prefix), shmkeeper.__file__
with shmkeeper.SharedMemory(create=True, size=10) as s:
    s.buf[0] = 1
    s.unlink()
print("ok")
"""


@pytest.mark.parametrize("how", [[], ["--no-build-isolation"]])
def test_pip_installs_it_offline_into_a_venv(env, tmp_path, how):
    src = tmp_path / "src"
    shutil.copytree(PKG, src, ignore=shutil.ignore_patterns(
        "tests", "__pycache__", "build", "*.egg-info"))
    venv = tmp_path / "venv"
    # Debian's pip refuses to write to the system (PEP 668): a venv, which
    # sees the system's pip and setuptools, is where a user installs it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip",
                    "--system-site-packages", str(venv)], check=True,
                   timeout=TIMEOUT)
    py = str(venv / "bin" / "python")
    r = subprocess.run([py, "-m", "pip", "install", "--no-index", "-q",
                        "--disable-pip-version-check"] + how
                       + [str(src)], capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr.decode()
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([py, "-c", USE], capture_output=True, env=clean,
                       cwd=str(tmp_path), timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == b"ok\n"
    assert env.objects() == []
