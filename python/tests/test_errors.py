# SPDX-License-Identifier: MIT
"""Errors: OSError subclasses with errno and the library's sentence."""
import errno
import os

import pytest

import shmkeeper
from shmkeeper import errors


def test_an_existing_name_is_FileExistsError_with_the_sentence(env):
    a = shmkeeper.SharedMemory("dup", create=True, size=10)
    with pytest.raises(FileExistsError) as e:
        shmkeeper.SharedMemory("dup", create=True, size=10)
    assert isinstance(e.value, shmkeeper.Error)
    assert e.value.errno == errno.EEXIST
    assert e.value.strerror == "segment %s: exists (owned by this process)" \
        % env.full("dup")
    assert str(e.value) == "[Errno 17] " + e.value.strerror
    a.unlink()


def test_a_missing_name_is_FileNotFoundError(env):
    with pytest.raises(FileNotFoundError) as e:
        shmkeeper.SharedMemory("nothing")
    assert isinstance(e.value, shmkeeper.Error)
    assert e.value.errno == errno.ENOENT
    assert env.full("nothing") in e.value.strerror


def test_a_bad_name_or_namespace_is_EINVAL_with_the_sentence(env):
    with pytest.raises(shmkeeper.Error) as e:
        shmkeeper.SharedMemory("../etc", create=True, size=1)
    assert e.value.errno == errno.EINVAL and "../etc" in e.value.strerror
    assert type(e.value) is shmkeeper.Error, "no builtin subclass for EINVAL"
    with pytest.raises(shmkeeper.Error) as e:
        shmkeeper.Namespace("no/slash")
    assert e.value.errno == errno.EINVAL and "no/slash" in e.value.strerror


def test_a_directory_that_is_not_a_registry_is_refused(env, tmp_path):
    (tmp_path / "precious").write_text("x")
    os.chmod(tmp_path, 0o700)
    with pytest.raises(shmkeeper.Error) as e:
        shmkeeper.Namespace(env.ns, str(tmp_path))
    assert e.value.errno == errno.ENOTEMPTY
    assert str(tmp_path) in e.value.strerror
    assert (tmp_path / "precious").read_text() == "x"


def test_every_errno_python_maps_gets_a_class_of_both_kinds():
    for code, builtin in [(errno.EEXIST, FileExistsError),
                          (errno.ENOENT, FileNotFoundError),
                          (errno.EPERM, PermissionError),
                          (errno.EACCES, PermissionError),
                          (errno.EAGAIN, BlockingIOError),
                          (errno.ETIMEDOUT, TimeoutError),
                          (errno.ECHILD, ChildProcessError)]:
        e = errors.error(-code, "a sentence")
        assert isinstance(e, builtin) and isinstance(e, shmkeeper.Error)
        assert (e.errno, e.strerror) == (code, "a sentence")
    e = errors.error(-errno.EDQUOT, "over")
    assert type(e) is shmkeeper.Error and e.errno == errno.EDQUOT


def test_import_star_does_not_shadow_the_builtins():
    scope = {}
    exec("from shmkeeper.errors import *", scope)
    assert "FileExistsError" not in scope and "Error" in scope
    assert issubclass(errors.FileExistsError, FileExistsError)
