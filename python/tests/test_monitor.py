# SPDX-License-Identifier: MIT
"""The ResourceMonitor from Python: samples, baseline, verdicts, limits."""
import errno
import json
import os

import pytest

import shmkeeper

MiB = 1 << 20


def test_a_sample_reports_this_process_and_the_namespace(env):
    with shmkeeper.Monitor(env.ns) as m:
        s = m.sample()
        assert isinstance(s, shmkeeper.Sample)
        assert s.pid == os.getpid()
        assert s.fds == len(os.listdir("/proc/self/fd")) - 1  # listing's own
        assert s.threads >= 1 and s.rss > 0 and s.zombies == 0
        assert (s.ns_segments, s.ns_bytes) == (0, 0)
        assert 0 < s.shm_free <= s.shm_total
        seg = shmkeeper.SharedMemory(create=True, size=MiB)
        s2 = m.sample()
        assert s2.ns_segments == 1 and s2.ns_bytes >= MiB
        assert s2.when_ms >= s.when_ms
        doc = json.loads(s2.json())
        assert doc["ns_segments"] == 1 and doc["pid"] == os.getpid()
        seg.unlink()


def test_a_verdict_says_what_leaked_against_the_baseline(env):
    with shmkeeper.Monitor(env.ns) as m:
        assert not m.has_baseline
        with pytest.raises(BlockingIOError) as e:
            m.check()
        assert isinstance(e.value, shmkeeper.Error) and e.value.strerror
        m.set_baseline()
        assert m.has_baseline and m.baseline().ns_segments == 0
        v = m.check()
        assert isinstance(v, shmkeeper.Verdict)
        assert not v.leak and not v.segment_leak and v.segment_delta == 0
        segs = [shmkeeper.SharedMemory(create=True, size=4096)
                for _ in range(2)]
        v = m.check()
        assert v.leak and v.segment_leak and v.bytes_leak
        assert v.segment_delta == 2 and v.bytes_delta >= 8192
        assert "segment" in v.reason
        for s in segs:
            s.unlink()
        assert not m.check().segment_leak


def test_a_baseline_can_be_a_sample_and_warmup_sets_one(env):
    with shmkeeper.Monitor(env.ns, warmup=2) as m:
        first = m.sample()
        assert not m.has_baseline
        m.sample()
        assert m.has_baseline
        m.set_baseline(first)
        assert m.baseline() == first
        assert m.check(first).leak is False


def test_tick_checks_every_nth_call(env):
    with shmkeeper.Monitor(env.ns, check_every=3, warmup=1) as m:
        m.sample()
        assert [m.tick() is None for _ in range(6)] == \
            [True, True, False, True, True, False]


def test_hard_and_soft_limits_on_an_attached_namespace(env):
    seen = []
    with shmkeeper.Namespace(env.ns + "-l") as n, shmkeeper.Monitor(
            n, ns_bytes_soft=8192, ns_bytes_hard=MiB,
            on_soft=lambda *a: seen.append(a)) as m:
        m.attach(n)
        a = n.create("a", 16384)  # over the soft limit: the callback
        assert seen and seen[0][0] == "ns_bytes" and seen[0][2] == 8192
        with pytest.raises(shmkeeper.Error) as e:
            n.create("b", 2 * MiB)
        assert e.value.errno == errno.EDQUOT and e.value.strerror
        assert env.objects(n.ns) == [n.ns + ".a"]
        m.detach(n)
        n.create("b", 2 * MiB).unlink()
        a.unlink()
