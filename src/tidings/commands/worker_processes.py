"""`tidings serve`'s child worker processes (``TIDINGS_WORKER_PROCESSES``).

The API and the dispatcher of one `tidings serve` share one interpreter, so they share one
core (the GIL), however many the machine has. With ``TIDINGS_WORKER_PROCESSES=N`` the server
process serves the API only and runs N `tidings worker` processes beside it, on the same
database and settings: each child has its own interpreter, so the API and the dispatchers
use as many cores. It is the scale-out shape of compose.yaml (an API process and worker
processes sharing nothing but the database), run by one command.

* Each child is woken through its pipe when the API commits new work
  (``tidings.runtime.wake``), as an in-process dispatcher is.
* A child that exits while the server runs is logged and started again, after a pause that
  grows while it keeps failing (1 s to 30 s), so a crash does not stop sending for good.
* When the server stops, the children are asked to stop (SIGTERM: they finish their sends
  and give back their leases) and killed if they have not within ``STOP_S``; a child whose
  server died reads the end of its pipe and stops by itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import structlog

from tidings.runtime import wake

log = structlog.get_logger("tidings.serve")
# A worker's own shutdown waits for its in-flight sends (up to the send timeout, 30 s).
STOP_S = 40.0
RESTART_MIN_S = 1.0
RESTART_MAX_S = 30.0
# A child that ran this long before it exited was healthy: its restart pause starts over.
HEALTHY_S = 60.0


@dataclass
class _Child:
    number: int
    read_fd: int
    write_fd: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    pause_s: float = RESTART_MIN_S


@dataclass
class WorkerProcesses:
    """N `tidings worker` children of this process, kept running until :meth:`stop`."""

    count: int
    _children: list[_Child] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None

    def start(self) -> wake.WakePipes:
        """Start the children; returns the pipes that wake them (for ``Runtime.wake_pipes``)."""
        for number in range(self.count):
            read_fd, write_fd = wake.pipe()
            child = _Child(number, read_fd, write_fd)
            self._spawn(child)
            self._children.append(child)
        self._watcher = threading.Thread(
            target=self._watch, name="tidings-worker-processes", daemon=True
        )
        self._watcher.start()
        return wake.WakePipes([c.write_fd for c in self._children])

    def pids(self) -> list[int]:
        return [c.proc.pid for c in self._children if c.proc is not None]

    def _spawn(self, child: _Child) -> None:
        child.proc = subprocess.Popen(
            [sys.executable, "-m", "tidings.cli", "worker", "--wake-fd", str(child.read_fd)],
            pass_fds=(child.read_fd,),
            # Its own process group: a Ctrl-C in the terminal reaches the server, which then
            # stops the children in order (not all at once, mid-send).
            start_new_session=True,
        )
        child.started = time.monotonic()
        log.info("worker process started", worker=child.number, pid=child.proc.pid)

    def _watch(self) -> None:
        """Start again every child that exits while the server runs."""
        while not self._stopping.wait(0.5):
            for child in self._children:
                proc = child.proc
                if proc is None or proc.poll() is None:
                    continue
                if time.monotonic() - child.started >= HEALTHY_S:
                    child.pause_s = RESTART_MIN_S
                log.warning(
                    "worker process exited; starting it again",
                    worker=child.number,
                    pid=proc.pid,
                    returncode=proc.returncode,
                    pause_s=child.pause_s,
                )
                if self._stopping.wait(child.pause_s):
                    return
                child.pause_s = min(RESTART_MAX_S, child.pause_s * 2)
                self._spawn(child)

    def stop(self) -> None:
        """Stop the children (SIGTERM, then SIGKILL after ``STOP_S``) and close the pipes;
        once (a second call does nothing)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
        running = [c.proc for c in self._children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_S
        for proc in running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker process did not stop in time; killing it", pid=proc.pid)
                proc.kill()
                proc.wait()
        for child in self._children:
            for fd in (child.read_fd, child.write_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._children.clear()
