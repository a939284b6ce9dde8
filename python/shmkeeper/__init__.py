# SPDX-License-Identifier: MIT
"""shmkeeper: POSIX shared memory that cannot leak, from Python.

A pure-Python binding (ctypes) of libshmkeeper:

- SharedMemory: the interface of multiprocessing.shared_memory.SharedMemory,
  crash-safe (a reaper removes the segments of a process that died) and
  never registered with multiprocessing's resource_tracker;
- Namespace: shmk_open()/shmk_close() as a context manager;
- reap(): shmk_reap() with its report as Python objects;
- Monitor: the ResourceMonitor (samples, baseline, leak verdicts);
- errors: OSError subclasses with errno and the library's sentence.

The library is loaded at import: $SHMKEEPER_LIB if set, else
libshmkeeper.so.0 from the dynamic loader's path.
"""
from ._lib import version as library_version, path as library_path
from .errors import Error
from .monitor import Monitor, Sample, Verdict
from .namespace import (DEFAULT_NS, Namespace, close_shared, default_ns,
                        namespace)
from .reap import ReapItem, ReapReport, reap
from .shared_memory import SharedMemory

__version__ = "0.1.0"
__all__ = ["SharedMemory", "Namespace", "namespace", "close_shared",
           "default_ns", "DEFAULT_NS", "reap", "ReapReport", "ReapItem",
           "Monitor", "Sample", "Verdict", "Error", "library_version",
           "library_path"]
