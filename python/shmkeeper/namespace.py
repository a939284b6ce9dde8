# SPDX-License-Identifier: MIT
"""Namespaces: shmk_open()/shmk_close() as an object and a context manager,
and the process's shared namespaces that SharedMemory uses by default."""
import atexit
import ctypes
import os
import sys
import threading
import weakref

from . import _lib
from ._lib import lib
from .errors import check, error

#: The namespace SharedMemory uses when it is given none.
ENV_NS = "SHMKEEPER_NS"
#: Used when SHMKEEPER_NS is not set either.
DEFAULT_NS = "python"

_DURABILITY = {None: _lib.SHMK_DURABLE_AUTO, False: _lib.SHMK_DURABLE_OFF,
               True: _lib.SHMK_DURABLE_ON}


def default_ns():
    """$SHMKEEPER_NS if set and not empty, else "python"."""
    return os.environ.get(ENV_NS) or DEFAULT_NS


def _close_ctx(ctx):
    # Finalizer of a Namespace that was never closed, when it is collected
    # (at exit, _at_exit() closes it): its segments go, as they would at
    # its death, only sooner.  Errors cannot be reported from here.
    lib.shmk_close(ctx)


class Namespace:
    """An open namespace (shmk_open()): a context manager whose exit closes
    it (shmk_close()), destroying every segment this process still owns in
    it.

    ns: the namespace ([A-Za-z0-9_-]{1,32}); None: $SHMKEEPER_NS, else
    "python".  dir: the registry directory (None: $SHMKEEPER_DIR, else the
    library's default).  shm_dir: where the objects live (None: /dev/shm).
    role: a label shmls shows.  durable: None (the default: off), False,
    True (fsync every change).  budget: bytes the namespace may take (0:
    no limit).  reap: reap dead owners' segments at open (the default).

    A Namespace never closed explicitly is closed when it is garbage
    collected or at interpreter exit.  It may be used by many threads.  In a
    fork child it stays usable: the child becomes an owner of its own at its
    first create, and closing it there destroys only the child's segments.
    """

    def __init__(self, ns=None, dir=None, *, shm_dir=None, role=None,
                 durable=None, budget=0, reap=True):
        self._lock = threading.RLock()
        self._monitor = None  # keeps an attached Monitor alive
        opts = _lib.Options()
        opts.ns = _lib.cstr(ns if ns else default_ns())
        opts.dir = _lib.cstr(dir)
        opts.shm_dir = _lib.cstr(shm_dir)
        opts.role = _lib.cstr(role)
        opts.durability = _DURABILITY[durable]
        opts.budget_bytes = budget
        opts.flags = 0 if reap else _lib.SHMK_OPEN_NO_REAP
        ctx = ctypes.c_void_p()
        check(lib.shmk_open(ctypes.byref(opts), ctypes.byref(ctx)))
        self._ctx = ctx.value
        self.ns = lib.shmk_ns(self._ctx).decode()
        #: The registry directory in use (resolved, absolute).
        self.dir = os.fsdecode(lib.shmk_dir(self._ctx))
        self.shm_dir = shm_dir
        self._finalizer = weakref.finalize(self, _close_ctx, self._ctx)
        self._finalizer.atexit = False  # _at_exit() does it, in order
        _ALL.add(self)

    def __repr__(self):
        state = "" if self._ctx else ", closed"
        return "Namespace(%r, dir=%r%s)" % (self.ns, self.dir, state)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __reduce__(self):
        raise TypeError("a Namespace cannot be pickled: pickle the "
                        "SharedMemory objects, or pass ns and dir")

    @property
    def closed(self):
        return self._ctx is None

    def close(self):
        """Destroys every segment this process still owns in the namespace,
        removes its record and closes.  Buffers of its SharedMemory objects
        stay valid (the memory lives until the last view of it goes); their
        names are gone.  A second close does nothing."""
        with self._lock:
            if self._ctx is None:
                return
            ctx, self._ctx = self._ctx, None
            self._finalizer.detach()
            rc = lib.shmk_close(ctx)
            self._monitor = None
            check(rc)

    def call(self, fn, *args):
        """fn(ctx, *args) under the namespace's lock, its errors raised.
        The lock keeps close() from freeing the context under a call."""
        with self._lock:
            if self._ctx is None:
                raise error(9, "namespace %s: closed" % self.ns)  # EBADF
            return check(fn(self._ctx, *args))

    @property
    def owned_count(self):
        """Segments this process owns in the namespace."""
        with self._lock:
            return lib.shmk_owned_count(self._ctx) if self._ctx else 0

    def create(self, name=None, size=0):
        """SharedMemory(name, create=True, size=size, ns=self)."""
        from .shared_memory import SharedMemory
        return SharedMemory(name, True, size, ns=self)

    def attach(self, name):
        """SharedMemory(name, ns=self)."""
        from .shared_memory import SharedMemory
        return SharedMemory(name, ns=self)


# Every Namespace of the process, so that a fork child can renew their locks
# (a lock another thread held at the fork would stay held for ever).
_ALL = weakref.WeakSet()
# The process's shared namespaces, by (ns, dir, shm_dir) as asked.
_SHARED = {}
_SHARED_LOCK = threading.Lock()


def _after_fork_in_child():
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()
    for n in list(_ALL):
        n._lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _at_exit():
    # Every namespace still open closes at exit, destroying what this
    # process still owns.  Children that multiprocessing would join at exit
    # are joined first, as they may not have attached yet: without this the
    # order of the two exit handlers would decide whether they find their
    # segments.  (Fork children of multiprocessing leave through os._exit
    # and run none of this: their segments are reaped as a dead owner's.)
    mp = sys.modules.get("multiprocessing")
    if mp is not None:
        for p in mp.active_children():
            if not p.daemon:
                p.join()
    for n in list(_ALL):
        try:
            n.close()
        except OSError:
            pass  # nobody to tell at exit; a reaper finishes the job


atexit.register(_at_exit)


def namespace(ns=None, dir=None, shm_dir=None):
    """The process's shared Namespace for ns (None: $SHMKEEPER_NS, else
    "python") in registry dir: opened at the first call, then the same
    object (reopened if it was closed).  SharedMemory uses it when given no
    Namespace.  It closes at interpreter exit."""
    key = (ns or default_ns(), dir, shm_dir)
    with _SHARED_LOCK:
        n = _SHARED.get(key)
        if n is None or n.closed:
            n = _SHARED[key] = Namespace(key[0], dir, shm_dir=shm_dir)
            # Also under the directory it resolved to: a SharedMemory
            # unpickled in this process (which names the resolved one)
            # then uses the same Namespace, hence the same owner.
            old = _SHARED.get((n.ns, n.dir, shm_dir))
            if old is None or old.closed:
                _SHARED[(n.ns, n.dir, shm_dir)] = n
        return n


def close_shared():
    """Closes the shared namespaces namespace() opened (their segments
    still owned by this process are destroyed).  For tests and for programs
    that want it done before exit."""
    with _SHARED_LOCK:
        shared = {id(n): n for n in _SHARED.values()}.values()
        _SHARED.clear()
    for n in shared:
        n.close()
