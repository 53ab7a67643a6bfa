"""Waking a dispatcher in another process of the same server: one pipe per child.

`tidings serve` with ``TIDINGS_WORKER_PROCESSES`` runs its dispatchers in child processes.
An idle dispatcher looks for due messages every ``TIDINGS_DISPATCH_IDLE_S``; on PostgreSQL a
``NOTIFY`` wakes it at once, on SQLite nothing would. So the API process writes a byte into
each child's pipe whenever it commits new work (``Runtime.wake``), and the child's event loop
reads it and wakes its dispatcher (:func:`listen`). A pipe is only a hint: a full one (a
child that is busy, or being restarted) drops the byte, and the idle check still finds the
work. When the parent is gone the child reads end-of-file and stops, rather than running on
as an orphan.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class WakePipes:
    """The write ends of the children's pipes (non-blocking)."""

    fds: list[int]

    def wake(self) -> None:
        for fd in self.fds:
            # Full (the child has not read yet: it will look anyway) or closed (it is being
            # restarted): a hint lost, nothing else.
            with contextlib.suppress(OSError):
                os.write(fd, b"\x01")


def pipe() -> tuple[int, int]:
    """A pipe for one child: (read end, inheritable; write end, non-blocking, kept here)."""
    read, write = os.pipe()
    os.set_inheritable(read, True)
    os.set_blocking(write, False)
    return read, write


def listen(fd: int, on_wake: Callable[[], None], on_parent_gone: Callable[[], None]) -> None:
    """In the child: call ``on_wake`` for every wake-up from the parent, and
    ``on_parent_gone`` once when the parent has gone (end of file)."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            on_wake()
            return
        loop.remove_reader(fd)
        on_parent_gone()

    loop.add_reader(fd, readable)
