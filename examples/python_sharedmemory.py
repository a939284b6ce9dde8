#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""python_sharedmemory.py - shmkeeper.SharedMemory from Python.

Shows: a segment with the interface of multiprocessing.shared_memory's,
shared with a child process that attaches to it by name; then a child that
creates a segment and is SIGKILLed before it can clean up (what leaks
/dev/shm with the standard library), and shmkeeper.reap() removing what it
left, because its owner is provably dead.

Needs the library (installed, or $SHMKEEPER_LIB) and the package
(installed, or PYTHONPATH=python).  $SHMKEEPER_DIR and $SHMKEEPER_NS are
used if set; otherwise a temporary registry and the namespace
"example-python".
"""
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile

import shmkeeper

NS = os.environ.get("SHMKEEPER_NS") or "example-python"
TMP = None
if not os.environ.get("SHMKEEPER_DIR"):  # the registry the library uses
    TMP = os.environ["SHMKEEPER_DIR"] = tempfile.mkdtemp(
        prefix="shmkeeper-example.")


def greet(name):
    """A child: attaches to the parent's segment by name and writes."""
    shm = shmkeeper.SharedMemory(name, ns=NS)
    shm.buf[:5] = b"HELLO"
    shm.close()


def crash():
    """A child that creates a segment and dies before it can unlink it."""
    shm = shmkeeper.SharedMemory("doomed", create=True, size=1 << 20,
                                 ns=NS)
    shm.buf[0] = 1
    os.kill(os.getpid(), signal.SIGKILL)


def main():
    ctx = multiprocessing.get_context("fork")
    failed = False
    with shmkeeper.SharedMemory(create=True, size=1 << 20,
                                ns=NS) as shm:
        p = ctx.Process(target=greet, args=(shm.name,))
        p.start()
        p.join()
        print("python: %s: the child wrote %r" % (shm.name, bytes(shm.buf[:5])))
        failed |= bytes(shm.buf[:5]) != b"HELLO"
        shm.unlink()  # only its creator may

    p = ctx.Process(target=crash)
    p.start()
    p.join()
    print("python: the child that created %s.doomed was killed (exit %d)"
          % (NS, p.exitcode))
    report = shmkeeper.reap(NS)
    print("python: reap: %d segment(s) of dead owners removed, %d bytes"
          % (report.segments_reaped, report.bytes_reaped))
    failed |= report.segments_reaped != 1
    failed |= os.path.exists("/dev/shm/%s.doomed" % NS)

    shmkeeper.close_shared()  # the process's namespaces, closed in order
    if TMP:
        shutil.rmtree(TMP)
        # The claim binding NS to the registry just removed.
        try:
            os.unlink("/dev/shm/.shmkeeper-claim.%d.%s" % (os.geteuid(), NS))
        except FileNotFoundError:
            pass
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
