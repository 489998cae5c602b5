"""One holder at a time: an exclusive ``flock`` on a lock file, for datagen builds and trainings.

The one lock of the project. ``OutputLock(out)`` locks ``<out>.lock`` for a whole build (two
builds on one ``--out`` would share ``<out>.partial/`` and write a file with missing work);
``model.train.RunLock`` locks ``<run>/.lock`` for a training through :class:`FileLock`. A second
holder is refused with a message naming the first (pid, host, command, start time), which the
lock file holds. The lock is ``flock`` (POSIX; released by the kernel when the holder dies, even
by ``kill -9``, so a stale lock file never blocks anyone). The file is removed on release; an
acquirer checks that the file it locked is still the one at the path (a lock on a file that the
previous holder had just removed would protect nothing).

The lock file is opened without following symbolic links (``O_NOFOLLOW``) and without blocking
(``O_NONBLOCK``), and used only if it is a regular file with a single name: a link, FIFO, device
or hard link placed at the lock's path is refused (:class:`LockPathError`) instead of having its
target truncated and overwritten, which as root could be any file.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import stat
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


class LockPathError(ValueError):
    """The lock's path holds something that is not a lock file this code may use (a symbolic link,
    a FIFO, a device, a folder, a file with other hard links): refused, never followed."""


#: ``os.open`` flags of every lock-file open: no link followed, no blocking on a FIFO, not
#: inherited by child processes.
_FLAGS = (getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
          | getattr(os, "O_CLOEXEC", 0))


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _refused(path: Path, what: str) -> LockPathError:
    return LockPathError(f"the lock file {path} is {what}, not a lock file: refused (a lock never "
                         "follows links or writes into other files); remove it and retry")


def open_lock(path, flags: int) -> int:
    """A descriptor of the regular file ``path`` opened with ``flags`` (plus ``O_NOFOLLOW``,
    ``O_NONBLOCK``, ``O_CLOEXEC``); :class:`LockPathError` for a symbolic link, anything that is
    not a regular file, or a file with other hard links (its content would be overwritten)."""
    path = Path(path)
    try:
        fd = os.open(path, flags | _FLAGS, 0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise _refused(path, "a symbolic link") from None
        if exc.errno == errno.EISDIR:
            raise _refused(path, "a folder") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        os.close(fd)
        raise _refused(path, _kind(st.st_mode) if not stat.S_ISREG(st.st_mode)
                       else f"a file with {st.st_nlink} hard links")
    return fd


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
    return read_holder(lock_path(out))


def read_holder(path) -> dict | None:
    """Who holds the lock file ``path`` now (a shared-lock probe), or None when nobody does (or
    the path holds no usable lock file: it is never followed or read then)."""
    if fcntl is None:
        return None
    try:
        fd = open_lock(path, os.O_RDONLY)
    except (OSError, LockPathError):
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


class FileLock:
    """``with FileLock(path, command):`` -- an exclusive, non-blocking lock on the file ``path``;
    raises :class:`LockedError` naming the holder, :class:`LockPathError` when ``path`` is not a
    regular file (a symbolic link is never followed). The file is removed on release."""

    def __init__(self, path, command: str | None = None):
        self.path = Path(path)
        self.command = command if command is not None else " ".join(sys.argv)
        self.fd: int | None = None

    def acquire(self) -> None:
        if fcntl is None:
            import warnings

            warnings.warn("file locking is not available on this platform: make sure no other "
                          f"process uses what {self.path} protects", stacklevel=2)
            return
        for _ in range(100):  # retried only when the holder removed the file under us
            fd = open_lock(self.path, os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                info = _read_info(fd)
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise LockedError(describe(info), info) from None
                raise
            try:
                now, held = os.lstat(self.path), os.fstat(fd)
                same = (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev)
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
            now, held = os.lstat(self.path), os.fstat(self.fd)
            if (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev):  # only our own file
                os.unlink(self.path)  # while still holding it: see the module docstring
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class OutputLock(FileLock):
    """``with OutputLock(out, command):`` -- the lock of a build's output, ``<out>.lock``."""

    def __init__(self, out, command: str | None = None):
        super().__init__(lock_path(out), command)
