# SPDX-License-Identifier: MIT
# A Python multiprocessing program that knows nothing of shmkeeper: the
# shmrun and preload trials run it, kill it at random moments, and check
# that nothing it created is left.  argv[1]: a prefix for its names.
import os
import sys
import multiprocessing as mp
from multiprocessing import shared_memory


def work(args):
    name, i = args
    shm = shared_memory.SharedMemory(name=name)
    shm.buf[i] = i + 1
    shm.close()
    return i


def main(prefix):
    lock = mp.Lock()
    shm = shared_memory.SharedMemory(name=prefix + "-a", create=True,
                                     size=4096)
    sl = shared_memory.ShareableList([1, 2.5, "x"], name=prefix + "-l")
    # MP_ROUNDS: how many times the pool's work is done (the test with a
    # reaper loop beside it keeps the program running for a while).
    with mp.Pool(2) as pool:
        for _ in range(int(os.environ.get("MP_ROUNDS", "1"))):
            print(sum(pool.map(work, [(prefix + "-a", i) for i in range(8)])))
            assert sl[2] == "x" and bytes(shm.buf[:8]) == bytes(range(1, 9))
    with lock:
        print(bytes(shm.buf[:8]).hex())
    print(sl[0], sl[1], sl[2])
    sl.shm.close()
    sl.shm.unlink()
    shm.close()
    shm.unlink()


if __name__ == "__main__":
    main(sys.argv[1])
