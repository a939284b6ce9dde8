# SPDX-License-Identifier: MIT
"""Targets of the multiprocessing children of the tests (importable by a
spawned interpreter)."""
import os
import signal

import shmkeeper


def upper_and_answer(conn):
    """Receives a SharedMemory (pickled by name), upper-cases its first five
    bytes, sends back one of its own, waits for the ack and unlinks it."""
    shm = conn.recv()
    shm.buf[:5] = bytes(shm.buf[:5]).upper()
    mine = shmkeeper.SharedMemory(create=True, size=100)
    mine.buf[0] = 9
    conn.send(mine)
    assert conn.recv() == "ack"
    mine.close()
    mine.unlink()
    shm.close()
    conn.send("done")


def hold_and_wait(conn, names, size):
    """Creates names and waits to be killed."""
    held = [shmkeeper.SharedMemory(n, create=True, size=size) for n in names]
    conn.send([s.name for s in held])
    signal.pause()
    os._exit(3)  # not reached


def try_unlink(conn):
    shm = conn.recv()
    try:
        shm.unlink()
        conn.send(None)
    except OSError as e:
        conn.send((type(e).__name__, isinstance(e, shmkeeper.Error), e.errno,
                   e.strerror))
