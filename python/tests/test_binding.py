# SPDX-License-Identifier: MIT
"""The ctypes declarations are checked against the loaded library: a copy
that drifted from shmkeeper.h is refused, not read wrongly."""
import ctypes
import os

import pytest

import shmkeeper
from shmkeeper import _lib


def test_the_loaded_library_is_the_one_asked_for():
    assert shmkeeper.library_path == os.environ["SHMKEEPER_LIB"]
    assert shmkeeper.library_version.startswith("0.")


def test_every_declared_struct_matches_the_library():
    for tag, cls in _lib.STRUCTS.items():
        _lib.check_struct(_lib.lib, tag, cls)  # raises on a difference


def drifted(fields):
    return type("Drifted", (ctypes.Structure,), {"_fields_": fields})


def test_a_field_at_another_offset_is_refused():
    fields = list(_lib.Sample._fields_)
    fields[2], fields[3] = fields[3], fields[2]  # fds <-> rss
    with pytest.raises(ImportError) as e:
        _lib.check_struct(_lib.lib, "shmk_sample", drifted(fields))
    assert "struct shmk_sample field rss is at offset 24" in str(e.value)


def test_a_missing_field_is_refused_by_size():
    fields = list(_lib.ReapReport._fields_)[:-1]
    with pytest.raises(ImportError) as e:
        _lib.check_struct(_lib.lib, "shmk_reap_report", drifted(fields))
    assert "struct shmk_reap_report is %d bytes" % ctypes.sizeof(
        _lib.ReapReport) in str(e.value)


def test_a_field_the_library_does_not_have_is_refused():
    fields = list(_lib.Verdict._fields_[:-1]) + [("reasons", ctypes.c_char * 512)]
    with pytest.raises(ImportError) as e:
        _lib.check_struct(_lib.lib, "shmk_verdict", drifted(fields))
    assert "no field reasons" in str(e.value)


def test_a_library_that_cannot_be_loaded_is_an_ImportError(tmp_path):
    import subprocess
    import sys
    env = dict(os.environ, SHMKEEPER_LIB=str(tmp_path / "nope.so"))
    r = subprocess.run([sys.executable, "-c", "import shmkeeper"], env=env,
                       capture_output=True, timeout=60)
    assert r.returncode == 1
    assert b"ImportError: shmkeeper: cannot load libshmkeeper" in r.stderr
    assert b"SHMKEEPER_LIB" in r.stderr
