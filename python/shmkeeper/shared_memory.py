# SPDX-License-Identifier: MIT
"""SharedMemory: multiprocessing.shared_memory.SharedMemory's interface over
shmkeeper segments."""
import ctypes
import errno
import os
import secrets
import weakref

from . import _lib
from ._lib import lib
from .errors import error
from .namespace import Namespace, namespace


def _mapping_view(handle):
    """A writable memoryview ('B', 1-D) of the handle's mapping, that keeps
    the mapping alive: the view's base object is a ctypes array over the
    mapped memory, and the handle is detached (munmap) only when that array
    is collected, which is when the last view, slice, cast or export of it
    (a numpy array over buf, ctypes from_buffer, ...) is gone.  So no
    Python object can ever see the memory unmapped."""
    addr = lib.shmk_segment_addr(handle)
    size = lib.shmk_segment_size(handle)
    base = (ctypes.c_char * size).from_address(addr)
    fin = weakref.finalize(base, lib.shmk_segment_detach, handle)
    # At interpreter exit the mapping stays until the process ends: a
    # view still in use by a later exit handler must not lose its memory.
    fin.atexit = False
    raw = memoryview(base)
    view = raw.cast("B")
    raw.release()  # view holds the base alone
    return view, size


def _rebuild(name, ns, dir, shm_dir):
    return SharedMemory(name, ns=namespace(ns, dir, shm_dir))


class SharedMemory:
    """A shared memory segment with the interface of
    multiprocessing.shared_memory.SharedMemory, crash-safe: its creation is
    recorded in the registry before it exists, so whatever way the creating
    process dies, a reaper (the next open of the namespace, shmclean,
    shmkeeper.reap()) removes it.  It is never registered with
    multiprocessing's resource_tracker.

    name: the segment's name in the namespace ([A-Za-z0-9_.-], the object is
    /dev/shm/<ns>.<name>); None with create=True: a fresh random name
    "psm_<16 hex>".  create: make a new segment of size bytes (refused if
    the name exists); else attach to an existing one (size is ignored).
    ns: a Namespace, or the name of the process's shared Namespace to use
    (shmkeeper.namespace(ns, dir)); None: $SHMKEEPER_NS, else "python".
    dir: the registry directory when ns is not a Namespace.

    Differences from the standard library's: only the process that created
    a segment may unlink() it (any other gets PermissionError); a segment
    lives no longer than its creator (unlinked when the creator's namespace
    closes, at the latest at its exit, or reaped after its death); close()
    never raises BufferError: views of buf that are still alive keep the
    memory mapped until they go.
    """

    _buf = None
    _ns = None

    def __init__(self, name=None, create=False, size=0, *, ns=None, dir=None):
        if not size >= 0:
            raise ValueError("'size' must be a positive integer")
        if create and size == 0:
            raise ValueError("'size' must be a positive number different "
                             "from zero")
        if name is None and not create:
            raise ValueError("'name' can only be None if create=True")
        if isinstance(ns, Namespace):
            if dir is not None:
                raise ValueError("dir is the Namespace's: pass one or the "
                                 "other")
            space = ns
        else:
            space = namespace(ns, dir)
        handle = ctypes.c_void_p()
        if not create:
            space.call(lib.shmk_segment_attach, _lib.cstr(name),
                       ctypes.byref(handle))
        elif name is not None:
            space.call(lib.shmk_segment_create, _lib.cstr(name), size,
                       ctypes.byref(handle))
        else:
            while True:
                name = "psm_" + secrets.token_hex(8)
                try:
                    space.call(lib.shmk_segment_create, _lib.cstr(name),
                               size, ctypes.byref(handle))
                    break
                except FileExistsError:
                    continue
        self._ns = space
        self._name = name
        self._creator = os.getpid() if create else None
        self._buf, self._size = _mapping_view(handle.value)

    def __repr__(self):
        return "%s(%r, size=%d, ns=%r)" % (type(self).__name__, self._name,
                                          self._size, self._ns.ns)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __reduce__(self):
        # By name: the receiving process attaches to the same segment in
        # the same namespace and registry.
        return (_rebuild, (self._name, self._ns.ns, self._ns.dir,
                           self._ns.shm_dir))

    @property
    def name(self):
        """The segment's name in its namespace (what SharedMemory(name)
        attaches to)."""
        return self._name

    @property
    def ns(self):
        """The Namespace the segment is in."""
        return self._ns

    @property
    def size(self):
        """Size in bytes."""
        return self._size

    @property
    def buf(self):
        """A writable memoryview of the memory; None after close()."""
        return self._buf

    def close(self):
        """Closes this object's access to the memory (the segment lives on).
        buf becomes None and is released; slices and other views of it
        taken before stay valid, and the memory is unmapped when the last
        of them goes."""
        buf, self._buf = self._buf, None
        if buf is not None:
            try:
                buf.release()
            except BufferError:
                pass  # exported: the exporter keeps the mapping, see above

    def unlink(self):
        """Removes the segment (its name; the memory goes when the last
        process unmaps it) and drops it from the registry.  Only the
        process that created it may: any other gets PermissionError.  A
        second unlink gets FileNotFoundError."""
        try:
            self._ns.call(lib.shmk_segment_destroy_name, _lib.cstr(self._name))
        except FileNotFoundError as e:
            if self._creator != os.getpid():
                raise error(errno.EPERM, "%s: only the process that created "
                            "it can unlink it" % e.strerror) from None
            raise
