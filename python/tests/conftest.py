# SPDX-License-Identifier: MIT
"""Every test gets its own registry directory and namespace (in the
environment, so child processes use them too), and fails if it left
anything in /dev/shm.  The package under test is the source tree's unless
SHMKEEPER_TEST_INSTALLED is set; the library is $SHMKEEPER_LIB, by default
the build tree's."""
import gc
import os
import secrets
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
ROOT = os.path.dirname(PKG)
os.environ.setdefault("SHMKEEPER_LIB",
                      os.path.join(ROOT, "build", "libshmkeeper.so.0"))
if not os.environ.get("SHMKEEPER_TEST_INSTALLED"):
    sys.path.insert(0, PKG)
    # Children (subprocess, multiprocessing's spawn) find it too.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [PKG, HERE] + [p for p in os.environ.get("PYTHONPATH", "").split(
            os.pathsep) if p])
else:
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [HERE] + [p for p in os.environ.get("PYTHONPATH", "").split(
            os.pathsep) if p])

import shmkeeper  # noqa: E402

SHM = "/dev/shm"


def shm_objects(ns):
    """Objects "<ns>.*" in /dev/shm, sorted."""
    return sorted(f for f in os.listdir(SHM) if f.startswith(ns + "."))


class Env:
    def __init__(self, ns, dir):
        self.ns, self.dir = ns, dir

    def objects(self, ns=None):
        return shm_objects(ns or self.ns)

    def full(self, name, ns=None):
        return "/%s.%s" % (ns or self.ns, name)


@pytest.fixture(autouse=True)
def env(monkeypatch):
    d = tempfile.mkdtemp(prefix="shmk-pytest-")
    ns = "py%dx%s" % (os.getpid(), secrets.token_hex(4))
    monkeypatch.setenv("SHMKEEPER_DIR", d)
    monkeypatch.setenv("SHMKEEPER_NS", ns)
    yield Env(ns, d)
    shmkeeper.close_shared()
    gc.collect()
    # Namespaces of a test are ns and ns + "-<suffix>".
    left = [f for f in os.listdir(SHM) if f.startswith(ns)]
    claims = [f for f in os.listdir(SHM)
              if f.startswith(".shmkeeper-claim.%d.%s" % (os.geteuid(), ns))]
    for f in left + claims:
        os.unlink(os.path.join(SHM, f))
    shutil.rmtree(d, ignore_errors=True)
    assert not left, "test left %s in %s" % (left, SHM)
