"""Byte-range locks on a lock file, owned by an open file, not by a process.

On Linux these are open-file-description locks (``F_OFD_SETLK``): two opens
of the file conflict even inside one process (classic POSIX ``lockf`` locks
belong to the process, so two caches in one process would both "get" the
lock, and closing any descriptor of the file would drop them all). Elsewhere
``lockf`` is the fallback. Either way the kernel releases a lock when its
holder dies, SIGKILL included.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
from pathlib import Path

_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None)
_OFD_SETLKW: int | None = getattr(fcntl, "F_OFD_SETLKW", None)


def _flock(kind: int, slot: int) -> bytes:
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (must be 0 for OFD locks)
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, slot, 1, 0)


def try_lock(fd: int, slot: int) -> bool:
    """Take the lock on byte ``slot`` if it is free; never blocks."""
    try:
        if _OFD_SETLK is not None:
            fcntl.fcntl(fd, _OFD_SETLK, _flock(fcntl.F_WRLCK, slot))
        else:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
    except OSError:
        return False
    return True


def unlock(fd: int, slot: int) -> None:
    if _OFD_SETLK is not None:
        fcntl.fcntl(fd, _OFD_SETLK, _flock(fcntl.F_UNLCK, slot))
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, slot)


def wait_until_free(path: Path, slot: int) -> None:
    """Block (in a worker thread) until byte ``slot`` is free, then return.

    A fresh open is its own lock owner, so this waits on the holder alone and
    never disturbs a lock the caller's own descriptor holds.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        with contextlib.suppress(OSError):
            if _OFD_SETLKW is not None:
                fcntl.fcntl(fd, _OFD_SETLKW, _flock(fcntl.F_WRLCK, slot))
                fcntl.fcntl(fd, _OFD_SETLK, _flock(fcntl.F_UNLCK, slot))  # type: ignore[arg-type]
            else:
                fcntl.lockf(fd, fcntl.LOCK_EX, 1, slot)
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, slot)
    finally:
        os.close(fd)
