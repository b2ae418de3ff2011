"""One writer per output: an advisory file lock that the operating system frees when its holder dies.

Extraction refuses a second run on the same output; preparing a face cache waits for the run already
building it (``wait=True``) and then reuses its work.

Why ``flock`` and not a PID file: a process killed with ``kill -9`` cannot clean up, and a PID may be
reused; the kernel drops a ``flock`` the moment its holder's file descriptor closes, so a stale lock
of a dead process is recovered without guessing. The file also names its holder (PID, host, start
time, command) for the message a second run gets. Local file systems only: ``flock`` over NFS is not
reliable.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from deepfever.errors import DeepFeverError

logger = logging.getLogger(__name__)


class RunLockedError(DeepFeverError, FileExistsError):
    """Another live run holds the output (and its parts folder)."""


class RunLock:
    """Exclusive lock on ``path``; ``acquire`` raises ``RunLockedError`` naming the holder, or with
    ``wait=True`` logs who holds it and blocks until it is free.

    Example:
        >>> with RunLock(Path(".faces.parts.lock"), "faces.parquet"):  # doctest: +SKIP
        ...     pass  # extract, merge: no other run can write faces.parquet meanwhile
    """

    def __init__(self, path: Path, what: str, wait: bool = False) -> None:
        self.path = Path(path)
        self.what = what
        self.wait = wait
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        """Take the lock (creating its file), wait for it or raise; ``OSError`` if the folder cannot be written."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                if self.wait:
                    logger.info("waiting for another deepfever run to finish %s (%s)", self.what, holder)
                    fcntl.flock(fd, fcntl.LOCK_EX)
                else:
                    os.close(fd)
                    raise RunLockedError(
                        f"{self.what} is being written by another deepfever run ({holder}); wait for it to finish or "
                        f"write to another output with -o. (The lock is {self.path}; it frees itself when that process ends.)"
                    ) from None
            # The previous holder may have removed the file between our open and flock: then we hold a lock
            # on a file nobody else can see, so start again on the file that is there now.
            if _same_file(fd, self.path):
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "command": " ".join(sys.argv[:6])}
        os.write(fd, (json.dumps(holder) + "\n").encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file, then let go; safe to call twice."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _read_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        holder = {}
    if not holder:
        return "holder unknown"
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}: {holder.get('command', '')}"
