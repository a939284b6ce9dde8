# SPDX-License-Identifier: MIT
"""reap(): owners SIGKILLed holding segments are reaped, the report comes
back as Python objects."""
import errno
import multiprocessing
import os
import signal
import subprocess
import sys

import pytest

import children
import shmkeeper

TIMEOUT = 60
HOLD = """
import shmkeeper, sys
a = shmkeeper.SharedMemory("a", create=True, size=4096)
b = shmkeeper.SharedMemory("b", create=True, size=1 << 20)
print("ready", flush=True)
sys.stdin.read()
"""


def killed_interpreter():
    p = subprocess.Popen([sys.executable, "-c", HOLD], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"ready\n"
    finally:
        p.kill()
        p.wait(TIMEOUT)
        p.stdin.close()
        p.stdout.close()
    return p.pid


def test_a_sigkilled_interpreters_segments_are_reaped(env):
    pid = killed_interpreter()
    assert env.objects() == [env.ns + ".a", env.ns + ".b"], "left by the kill"
    r = shmkeeper.reap(env.ns)
    assert isinstance(r, shmkeeper.ReapReport) and r.error is None
    reaped = r.by_action("reaped")
    assert sorted(i.object for i in reaped) == [env.full("a"), env.full("b")]
    assert all(isinstance(i, shmkeeper.ReapItem) for i in r.items)
    assert all(i.pid == pid and i.ns == env.ns and i.errno == 0
               and i.holders == () and i.reason for i in reaped)
    assert sorted(i.bytes for i in reaped) == [4096, 1 << 20]
    dead = r.by_action("owner-dead")
    assert len(dead) == 1 and dead[0].pid == pid
    assert (r.owners_dead, r.segments_reaped, r.bytes_reaped) == \
        (1, 2, 4096 + (1 << 20))
    assert (r.owners_alive, r.errors, r.quarantined) == (0, 0, 0)
    assert env.objects() == []
    assert shmkeeper.reap(env.ns).items == (), "nothing left to find"


def test_a_dry_run_changes_nothing(env):
    killed_interpreter()
    r = shmkeeper.reap(env.ns, dry_run=True)
    assert len(r.by_action("reaped")) == 2
    assert env.objects() == [env.ns + ".a", env.ns + ".b"]
    assert shmkeeper.reap(env.ns).segments_reaped == 2
    assert env.objects() == []


def test_a_sigkilled_fork_child_is_reaped_and_its_parents_segments_kept(env):
    ctx = multiprocessing.get_context("fork")
    mine = shmkeeper.SharedMemory("parent", create=True, size=4096)
    here, there = ctx.Pipe()
    p = ctx.Process(target=children.hold_and_wait,
                    args=(there, ["c1", "c2"], 8192))
    p.start()
    try:
        assert here.poll(TIMEOUT) and here.recv() == ["c1", "c2"]
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.join(TIMEOUT)
    assert p.exitcode == -signal.SIGKILL
    assert len(env.objects()) == 3
    r = shmkeeper.reap(env.ns)
    assert sorted(i.object for i in r.by_action("reaped")) == \
        [env.full("c1"), env.full("c2")]
    live = r.by_action("live")
    assert [i.object for i in live] == [env.full("parent")]
    assert live[0].holders == (os.getpid(),)
    assert env.objects() == [env.ns + ".parent"]
    mine.unlink()


def test_the_next_open_of_the_namespace_reaps_too(env):
    killed_interpreter()
    n = shmkeeper.Namespace(env.ns)  # as a restarted service would
    assert env.objects() == []
    n.close()


def test_an_error_with_a_report_is_raised_with_it_or_returned(env, tmp_path):
    # A namespace bound to another registry (env.dir): EBUSY, with a report.
    with shmkeeper.Namespace(env.ns):
        pass
    other = str(tmp_path / "other")
    with shmkeeper.Namespace(env.ns + "-o", other):
        pass  # makes other a registry
    with pytest.raises(shmkeeper.Error) as e:
        shmkeeper.reap(env.ns, other)
    assert e.value.errno == errno.EBUSY and env.dir in e.value.strerror
    assert isinstance(e.value.report, shmkeeper.ReapReport)
    assert e.value.report.by_action("error")[0].errno == errno.EBUSY
    r = shmkeeper.reap(env.ns, other, check=False)
    assert r.error.errno == errno.EBUSY and r.errors == 1


def test_a_reap_that_cannot_run_says_why(env, tmp_path):
    (tmp_path / "precious").write_text("x")
    os.chmod(tmp_path, 0o700)
    with pytest.raises(shmkeeper.Error) as e:
        shmkeeper.reap(env.ns, str(tmp_path))
    assert e.value.errno == errno.ENOTEMPTY  # not a registry
    assert str(tmp_path) in e.value.strerror
    r = shmkeeper.reap(env.ns, str(tmp_path), check=False)
    assert r.error.errno == errno.ENOTEMPTY and r.items == ()
    assert (tmp_path / "precious").read_text() == "x"
