# SPDX-License-Identifier: MIT
"""The ResourceMonitor (shmk_monitor_*): samples, baseline, leak verdicts,
limits."""
import ctypes
import dataclasses
import threading
import weakref

from . import _lib
from ._lib import lib
from .errors import check
from .namespace import Namespace


@dataclasses.dataclass(frozen=True)
class Sample:
    """What one sample saw."""
    when_ms: int      #: unix time, milliseconds
    pid: int          #: the process sampled
    fds: int          #: open descriptors
    rss: int          #: resident bytes
    threads: int
    children: int     #: direct children, zombies included
    zombies: int      #: children that exited and were not reaped
    ns_segments: int  #: our objects "<ns>.*" in the shm directory
    ns_bytes: int     #: the memory they take
    shm_free: int     #: free bytes of the shm filesystem
    shm_total: int

    def _c(self):
        return _lib.Sample(**dataclasses.asdict(self))

    def json(self):
        """The sample as one JSON object on one line (shmk_sample_json())."""
        buf = ctypes.create_string_buffer(1024)
        n = check(lib.shmk_sample_json(ctypes.byref(self._c()), buf,
                                       len(buf)))
        return buf.raw[:n].decode()


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A sample compared with the baseline."""
    leak: bool        #: any of the below
    fd_leak: bool
    rss_leak: bool
    thread_leak: bool
    child_leak: bool
    segment_leak: bool
    bytes_leak: bool
    fd_delta: int
    thread_delta: int
    child_delta: int
    zombies: int
    rss_delta: int
    segment_delta: int
    bytes_delta: int
    reason: str       #: which resources and by how much, in words


def _sample(s):
    return Sample(**{f.name: getattr(s, f.name)
                     for f in dataclasses.fields(Sample)})


def _verdict(v):
    fields = {}
    for f in dataclasses.fields(Verdict):
        x = getattr(v, f.name)
        fields[f.name] = (x.decode(errors="replace") if f.name == "reason"
                          else bool(x) if f.type is bool else x)
    return Verdict(**fields)


class Monitor:
    """A ResourceMonitor: a context manager whose exit destroys it.

    ns: a namespace name or Namespace whose segments to count (optional).
    pid: the process to sample (0: this one).  warmup: take the baseline
    automatically at this sample (0: only set_baseline()).  Thresholds and
    limits are those of struct shmk_monitor_options (0: the library's
    default, or no limit).  on_soft(resource, value, limit): called when a
    soft limit is crossed, on the thread that crossed it (exceptions it
    raises are printed and ignored, as for any ctypes callback).
    """

    def __init__(self, ns=None, *, pid=0, shm_dir=None, warmup=0,
                 fd_threshold=0, rss_threshold_pct=0.0, rss_threshold_bytes=0,
                 segment_threshold=0, bytes_threshold=0, ns_bytes_soft=0,
                 ns_bytes_hard=0, rss_soft=0, rss_hard=0, on_soft=None,
                 check_every=0):
        if isinstance(ns, Namespace):
            shm_dir = shm_dir if shm_dir is not None else ns.shm_dir
            ns = ns.ns
        self._lock = threading.Lock()
        self._attached = weakref.WeakSet()
        o = _lib.MonitorOptions(
            pid=pid, ns=_lib.cstr(ns), shm_dir=_lib.cstr(shm_dir),
            warmup=warmup, fd_threshold=fd_threshold,
            rss_threshold_pct=rss_threshold_pct,
            rss_threshold_bytes=rss_threshold_bytes,
            segment_threshold=segment_threshold,
            bytes_threshold=bytes_threshold, ns_bytes_soft=ns_bytes_soft,
            ns_bytes_hard=ns_bytes_hard, rss_soft=rss_soft,
            rss_hard=rss_hard, check_every=check_every)
        if on_soft is not None:
            def soft(resource, value, limit, arg):
                on_soft(resource.decode(), value, limit)
            self._soft = _lib.SOFT_FN(soft)  # alive as long as the monitor
            o.on_soft = self._soft
        self._opts = o  # the strings it points to stay alive with it
        m = ctypes.c_void_p()
        check(lib.shmk_monitor_create(ctypes.byref(o), ctypes.byref(m)))
        self._m = m.value
        self._finalizer = weakref.finalize(self, lib.shmk_monitor_destroy,
                                           self._m)
        # Not at exit: a namespace it is attached to may still create
        # segments (and consult it) in a later exit handler.
        self._finalizer.atexit = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Detaches the monitor from every namespace and destroys it."""
        with self._lock:
            if self._m is None:
                return
            for n in list(self._attached):
                self._detach(n)
            self._m = None
            self._finalizer()

    def _handle(self):
        if self._m is None:
            raise ValueError("monitor closed")
        return self._m

    def sample(self):
        """Takes a sample (counted towards the warm-up)."""
        s = _lib.Sample()
        check(lib.shmk_monitor_sample(self._handle(), ctypes.byref(s)))
        return _sample(s)

    def set_baseline(self, sample=None):
        """Sets the baseline to sample, or to a fresh sample if None."""
        check(lib.shmk_monitor_set_baseline(
            self._handle(), None if sample is None
            else ctypes.byref(sample._c())))

    @property
    def has_baseline(self):
        return bool(lib.shmk_monitor_has_baseline(self._handle()))

    def baseline(self):
        """The baseline sample (raises the library's error if none)."""
        s = _lib.Sample()
        check(lib.shmk_monitor_baseline(self._handle(), ctypes.byref(s)))
        return _sample(s)

    def check(self, sample=None):
        """Compares sample (None: a fresh one) with the baseline and returns
        a Verdict; BlockingIOError (EAGAIN) while there is no baseline."""
        v = _lib.Verdict()
        check(lib.shmk_monitor_check(
            self._handle(), None if sample is None
            else ctypes.byref(sample._c()), ctypes.byref(v)))
        return _verdict(v)

    def tick(self):
        """Counts one operation: every check_every-th call samples and
        returns a Verdict, the others None."""
        v = _lib.Verdict()
        if check(lib.shmk_monitor_tick(self._handle(), ctypes.byref(v))):
            return _verdict(v)
        return None

    def limits(self, sample):
        """Applies the soft limits to sample (calls on_soft); True if one is
        crossed."""
        return bool(check(lib.shmk_monitor_limits(
            self._handle(), ctypes.byref(sample._c()))))

    def attach(self, namespace):
        """Makes segment creation in namespace obey the hard limits
        (EDQUOT over ns_bytes_hard, ENOMEM over rss_hard).  The namespace
        keeps the monitor alive while attached; close() detaches."""
        with self._lock:
            namespace.call(lambda ctx: lib.shmk_monitor_attach(
                self._handle(), ctx))
            if namespace._monitor is not None:
                namespace._monitor._attached.discard(namespace)
            namespace._monitor = self
            self._attached.add(namespace)

    def detach(self, namespace):
        """Undoes attach()."""
        with self._lock:
            self._detach(namespace)

    def _detach(self, namespace):
        if namespace._monitor is self:
            if not namespace.closed:
                namespace.call(lambda ctx: lib.shmk_monitor_attach(None, ctx))
            namespace._monitor = None
        self._attached.discard(namespace)
