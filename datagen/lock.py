"""One writer per output: an exclusive lock on ``<out>.lock`` held for the whole build.

Two builds on one ``--out`` would share ``<out>.partial/`` and write a file with missing work; the
second one is refused with a message naming the first (pid, host, command, start time), which the
lock file holds. The lock is ``flock`` (POSIX; released by the kernel when the holder dies, even
by ``kill -9``, so a stale lock file never blocks a later build). The file is removed on release;
an acquirer checks that the file it locked is still the one at the path (a lock on a file that
the previous holder had just removed would protect nothing).
"""
from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; builds there are not protected against a second writer
    fcntl = None


class LockedError(RuntimeError):
    """Another process holds the lock; ``holder`` describes it."""

    def __init__(self, message: str, holder: dict):
        super().__init__(message)
        self.holder = holder


def lock_path(out) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".lock")


def describe(holder: dict) -> str:
    """'pid 123 on host h since 2026-01-01T00:00:00+00:00 (python -m datagen build ...)'."""
    if not holder:
        return "a process that did not say which"
    text = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"
    if holder.get("started"):
        text += f" since {holder['started']}"
    if holder.get("command"):
        text += f" ({holder['command']})"
    return text


def _read_info(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 65536).decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        return {}


def holder(out) -> dict | None:
    """Who holds the lock of ``out`` now, or None when no build is running for it."""
    if fcntl is None:
        return None
    try:
        fd = os.open(lock_path(out), os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return _read_info(fd) or {"pid": "?"}
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class OutputLock:
    """``with OutputLock(out, command):`` -- exclusive, non-blocking; raises :class:`LockedError`."""

    def __init__(self, out, command: str | None = None):
        self.path = lock_path(out)
        self.command = command if command is not None else " ".join(sys.argv)
        self.fd: int | None = None

    def acquire(self) -> None:
        if fcntl is None:
            import warnings

            warnings.warn("file locking is not available on this platform: make sure no other "
                          f"build writes {self.path.name[:-5]}", stacklevel=2)
            return
        for _ in range(100):  # retried only when the holder removed the file under us
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                info = _read_info(fd)
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise LockedError(describe(info), info) from None
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder removed this file after we opened it
                os.close(fd)
                time.sleep(0.01)
                continue
            info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                    "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(info).encode())
            self.fd = fd
            return
        raise OSError(errno.EBUSY, f"could not lock {self.path}")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # while still holding it: see the module docstring
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
