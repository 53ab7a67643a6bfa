"""The render pool: user templates render in worker processes, each with a time and a memory
budget, so that a runaway template takes down only itself.

Owns a fixed number of child processes, reused from render to render, each rendering one
message at a time, and what happens when a render overruns:

* time (``timeout_s``): a render that has not answered by then has its process killed
  (SIGKILL) and replaced; it fails with :class:`RenderTimedOut`;
* memory (``memory_mb``): each child caps its address space (``RLIMIT_AS``) at what it
  had when it became ready plus this much; a render that needs more raises MemoryError in
  the child, which answers :class:`RenderOutOfMemory` and exits, and is replaced;
* a child that dies mid-render any other way (a C extension aborting, the kernel's OOM
  killer) fails that render with :class:`RenderCrashed`.

These subclass :class:`RenderFailure`: the message's own template is at fault, and no
other render is affected. :class:`PoolClosed`, :class:`PoolBusy` and
:class:`WorkerStopped` are not the message's fault (shutdown; no worker free for
``max_wait_s``; a child stopped from outside): the render should be tried again later.

Children come from multiprocessing's ``forkserver`` context: they fork from a small
single-threaded server process that has the render modules imported, never from this
threaded asyncio process, and a replacement is ready in milliseconds rather than the
second a fresh interpreter takes to import Jinja, css-inline and the rest. A child ignores
SIGINT (Ctrl-C reaches the whole process group; stopping is the parent's to do), and a
thread in it exits the process the moment its socket to the parent hangs up, so a parent
that dies, even by SIGKILL, leaves no child behind.

The parent speaks to each child over a socketpair with asyncio streams, so a render is
awaited without blocking the event loop or holding a thread, and renders wait for a free
child in arrival order. A frame is a 4-byte length and a pickle. What comes back from a
child is unpickled with an allow-list of classes: a child whose template got out of the
Jinja sandbox still cannot make the parent run code.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import io
import multiprocessing
import os
import pickle
import resource
import select
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar, cast

import structlog

from tidings.domain.errors import ValidationError
from tidings.render.errors import RenderError
from tidings.render.templating import SandboxLimits, set_limits

log = structlog.get_logger("tidings.render.pool")

T = TypeVar("T")

_HEADER = struct.Struct("!I")
_READ_LIMIT = 16 * 1024 * 1024  # stream buffer: a whole rendered email in a few reads
# What a child may send back (besides plain data): the render's result and its errors.
_RESULT_CLASSES = frozenset(
    {
        ("tidings.render.email", "RenderedEmail"),
        ("tidings.render.errors", "RenderError"),
        ("tidings.domain.errors", "ValidationError"),
    }
)


class RenderFailure(Exception):
    """A render produced no email, through its template's fault; ``str()`` says why."""


class RenderTimedOut(RenderFailure):
    """The render overran its time budget; its worker was killed and replaced."""


class RenderOutOfMemory(RenderFailure):
    """The render overran its memory budget; its worker was replaced."""


class RenderCrashed(RenderFailure):
    """The worker died during the render; it was replaced."""


class PoolClosed(RuntimeError):
    """The pool is shutting down: the render was not judged, try it again later."""


class PoolBusy(RuntimeError):
    """No worker was free within ``max_wait_s``: not the template's fault, try again later
    (the caller's lease on the message must not run out while it waits)."""


class WorkerStopped(RuntimeError):
    """The worker was stopped from outside (SIGTERM) mid-render: not the template's fault."""


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """How many workers, the budgets of one render, and what the workers import up front."""

    size: int
    timeout_s: float
    memory_mb: int
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    preload: tuple[str, ...] = ()
    start_timeout_s: float = 60.0
    max_wait_s: float | None = None  # for a free worker; None: as long as it takes


def default_size() -> int:
    """The number of CPUs this process may run on, at least 2."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(2, cpus)


# -- the child ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ChildConfig:
    memory_bytes: int
    limits: SandboxLimits
    preload: tuple[str, ...]


def _child_main(sock: socket.socket, config: _ChildConfig) -> None:
    """A worker: set its limits, say it is ready, then answer one render at a time."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent(sock)
    for name in config.preload:
        importlib.import_module(name)
    set_limits(config.limits)
    _cap_address_space(config.memory_bytes)
    # Made now: when the budget is spent there may be no memory left to make it.
    out_of_memory = pickle.dumps(("memory", None))
    _send(sock, pickle.dumps(("ready", os.getpid())))
    while True:
        request = _receive(sock)
        if request is None:  # the parent closed the pool
            return
        try:
            reply = _serve(request)
        except MemoryError:
            reply = None
        # Outside the except block: the failed render's frames (and what they held) are
        # gone by now.
        if reply is None:
            _send(sock, out_of_memory)
            os._exit(0)  # a fresh worker replaces this one; nothing here needs cleaning up
        _send(sock, reply)


def _serve(request: bytes | bytearray) -> bytes:
    try:
        function, args = pickle.loads(request)
        result = function(*args)
        return pickle.dumps(("ok", result), protocol=pickle.HIGHEST_PROTOCOL)
    except MemoryError:
        raise
    except ValidationError as error:
        if type(error) not in (ValidationError, RenderError):
            error = ValidationError(error.path, error.message)  # a class the parent allows
        return pickle.dumps(("error", error), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        return pickle.dumps(("failed", f"{type(error).__name__}: {error}"))


def _exit_with_parent(sock: socket.socket) -> None:
    """Exit this process as soon as the parent's end of ``sock`` closes, even mid-render."""

    def watch() -> None:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLRDHUP)
        while True:
            for _fd, events in poller.poll():
                if events & (select.POLLRDHUP | select.POLLHUP | select.POLLERR):
                    os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _cap_address_space(extra_bytes: int) -> None:
    """Cap this process's address space at its current size plus ``extra_bytes``: the
    budget is what one render may add, whatever the imported libraries take."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    limit = pages * os.sysconf("SC_PAGE_SIZE") + extra_bytes
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    # The hard limit too: a render that got out of the sandbox cannot raise it again.
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _send(sock: socket.socket, data: bytes) -> None:
    sock.sendall(_HEADER.pack(len(data)))
    sock.sendall(data)


def _receive(sock: socket.socket) -> bytearray | None:
    header = _read_exactly(sock, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    return _read_exactly(sock, size)


def _read_exactly(sock: socket.socket, size: int) -> bytearray | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = sock.recv_into(view[got:])
        if count == 0:
            return None
        got += count
    return buffer


# -- the parent ---------------------------------------------------------------------------


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _RESULT_CLASSES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a render worker sent a {module}.{name}: not allowed")


def _loads(data: bytes) -> Any:
    return _Unpickler(io.BytesIO(data)).load()


class _Worker:
    """One child process and the parent's end of its socket."""

    def __init__(
        self,
        process: BaseProcess,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        exited: asyncio.Future[int | None],
    ) -> None:
        self.process = process
        self.reader = reader
        self.writer = writer
        self.exited = exited
        self.retired = False

    @property
    def pid(self) -> int | None:
        return self.process.pid

    async def receive(self) -> tuple[str, Any]:
        header = await self.reader.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(header)
        kind, value = _loads(await self.reader.readexactly(size))
        return str(kind), value

    async def call(self, request: bytes) -> tuple[str, Any]:
        self.writer.write(_HEADER.pack(len(request)) + request)
        await self.writer.drain()
        return await self.receive()

    def kill(self) -> None:
        if not self.exited.done():
            with contextlib.suppress(ProcessLookupError, ValueError):
                self.process.kill()
        self.writer.close()


class RenderPool:
    """Worker processes that render with a time and memory budget; see the module docstring.

    ``start()`` launches the workers (renders wait for the first to be ready), ``run()``
    renders, ``close()`` kills the workers. ``run()`` starts the pool if need be.
    """

    def __init__(self, config: PoolConfig) -> None:
        self.config = config
        self.counts: collections.Counter[str] = collections.Counter()
        self._child = _ChildConfig(
            memory_bytes=config.memory_mb * 1024 * 1024,
            limits=config.limits,
            preload=(__name__, *config.preload),
        )
        self._context = multiprocessing.get_context("forkserver")
        self._started = False
        self._closed = False
        self._idle: collections.deque[_Worker] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[_Worker]] = collections.deque()
        self._workers: set[_Worker] = set()  # ready, idle or busy
        self._busy: set[_Worker] = set()
        self._launched: dict[BaseProcess, asyncio.Future[int | None] | None] = {}
        self._keepers: set[asyncio.Task[None]] = set()
        self._ready = asyncio.Event()
        # Process.start() blocks (the first one until the fork server has imported the
        # render modules): it runs here, never on the event loop or its default executor.
        self._spawner: ThreadPoolExecutor | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Launch the workers; returns at once (see :meth:`wait_ready`)."""
        if self._started or self._closed:
            return
        self._started = True
        self._context.set_forkserver_preload(_forkserver_preload(self._child.preload))
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render-spawn")
        for _ in range(self.config.size):
            self._keep_one()
        log.info(
            "render pool starting",
            workers=self.config.size,
            timeout_s=self.config.timeout_s,
            memory_mb=self.config.memory_mb,
        )

    async def wait_ready(self) -> None:
        """Wait until every worker is ready (for tests and benchmarks)."""
        await self.start()
        while len(self._workers) < self.config.size:
            self._ready.clear()
            await self._ready.wait()

    async def close(self) -> None:
        """Kill every worker and wait for them to exit; renders in flight get
        :class:`PoolClosed`."""
        if self._closed:
            return
        self._closed = True
        if not self._started:
            return
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(PoolClosed("the render pool is shutting down"))
        self._waiters.clear()
        keepers = list(self._keepers)
        for task in keepers:
            task.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        if self._spawner is not None:
            # A launch in progress finishes (bounded by the fork server's answer), then
            # everything it started is killed below.
            await asyncio.to_thread(self._spawner.shutdown)
        for worker in list(self._workers):
            self._retire(worker, replace=False)
        exits: list[asyncio.Future[int | None]] = []
        for process, exited in list(self._launched.items()):
            if exited is None:
                if process.pid is None:  # its launch failed
                    self._launched.pop(process, None)
                    continue
                exited = self._watch_exit(process)
            if not exited.done():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    process.kill()
            exits.append(exited)
        if exits:
            _done, pending = await asyncio.wait(exits, timeout=10)
            if pending:
                log.warning("render workers did not exit after SIGKILL", count=len(pending))
        log.info("render pool stopped", **dict(self.counts))

    # -- rendering ------------------------------------------------------------------------

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in a worker, within the time and memory budgets.

        ``function`` must be importable by name (a module-level function). Raises what it
        raises (a :class:`~tidings.domain.errors.ValidationError` as is; anything else as
        :class:`RenderFailure`), a :class:`RenderFailure` subclass when the render
        overran a budget or killed its worker, and :class:`PoolClosed`, :class:`PoolBusy`
        or :class:`WorkerStopped` when it should be tried again later.
        """
        if self._closed:
            raise PoolClosed("the render pool is shut down")
        await self.start()
        request = pickle.dumps((function, args), protocol=pickle.HIGHEST_PROTOCOL)
        worker = await self._acquire()
        self._busy.add(worker)
        keep = False
        try:
            try:
                kind, value = await asyncio.wait_for(
                    worker.call(request), timeout=self.config.timeout_s
                )
            except TimeoutError:
                self.counts["timed_out"] += 1
                raise RenderTimedOut(
                    f"the template took longer than {self.config.timeout_s:g} s "
                    "(TIDINGS_RENDER_TIMEOUT_S)"
                ) from None
            except (asyncio.IncompleteReadError, ConnectionError):
                raise await self._died(worker) from None
            if kind == "memory":
                self.counts["out_of_memory"] += 1
                raise RenderOutOfMemory(
                    f"the template used more than {self.config.memory_mb} MB "
                    "(TIDINGS_RENDER_MEMORY_MB)"
                )
            keep = True
            if kind == "ok":
                self.counts["rendered"] += 1
                return cast(T, value)
            self.counts["failed"] += 1
            if kind == "error":
                raise value
            raise RenderFailure(f"could not be rendered: {value}")
        finally:
            self._busy.discard(worker)
            if keep:
                self._release(worker)
            else:
                self._retire(worker)

    async def _died(self, worker: _Worker) -> Exception:
        """What to raise for a worker that hung up mid-render."""
        if self._closed:
            return PoolClosed("the render pool is shutting down")
        try:
            code = await asyncio.wait_for(asyncio.shield(worker.exited), timeout=5)
        except TimeoutError:
            code = None
        if code == -signal.SIGTERM:
            return WorkerStopped("the render process was stopped (SIGTERM) mid-render")
        self.counts["crashed"] += 1
        return RenderCrashed(
            f"the render process died ({_describe_exit(code)}); the template may have used "
            f"more than {self.config.memory_mb} MB (TIDINGS_RENDER_MEMORY_MB)"
        )

    # -- workers --------------------------------------------------------------------------

    def worker_pids(self) -> list[int]:
        """The process ids of the ready workers, idle or busy (for tests)."""
        return sorted(w.pid for w in self._workers if w.pid is not None)

    def busy_pids(self) -> list[int]:
        """The process ids of the workers rendering right now (for tests)."""
        return sorted(w.pid for w in self._busy if w.pid is not None)

    async def _acquire(self) -> _Worker:
        """A free worker, to renders in arrival order (:class:`PoolBusy` after
        ``max_wait_s``)."""
        while self._idle:
            worker = self._idle.popleft()
            if not worker.exited.done():
                return worker
        waiter: asyncio.Future[_Worker] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.config.max_wait_s):
                return await waiter
        except BaseException as error:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(waiter.result())  # handed a worker just as we gave up
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(error, TimeoutError):
                self.counts["busy"] += 1
                raise PoolBusy(
                    f"no render worker was free for {self.config.max_wait_s:g} s"
                ) from None
            raise

    def _release(self, worker: _Worker) -> None:
        """``worker`` is free: to the longest waiting render, else to the idle list."""
        if self._closed or worker.retired or worker.exited.done():
            self._retire(worker)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self._idle.append(worker)

    def _retire(self, worker: _Worker, *, replace: bool = True) -> None:
        """Kill ``worker`` (if it still runs) and start another in its place."""
        if worker.retired:
            return
        worker.retired = True
        self._workers.discard(worker)
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        worker.kill()
        if replace and not self._closed:
            self.counts["replaced"] += 1
            self._keep_one()

    def _keep_one(self) -> None:
        task = asyncio.get_running_loop().create_task(self._start_worker(), name="render-worker")
        self._keepers.add(task)
        task.add_done_callback(self._keepers.discard)

    async def _start_worker(self) -> None:
        """Start one worker, trying again (with backoff) until it is ready or the pool
        closes."""
        delay = 0.5
        while not self._closed:
            try:
                worker = await self._launch()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.error(
                    "a render worker could not start; trying again",
                    error=f"{type(error).__name__}: {error}",
                    retry_in_s=delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            self.counts["started"] += 1
            self._workers.add(worker)
            self._ready.set()
            self._release(worker)
            return

    async def _launch(self) -> _Worker:
        loop = asyncio.get_running_loop()
        parent_sock, child_sock = socket.socketpair()
        process = self._context.Process(
            target=_child_main,
            args=(child_sock, self._child),
            name="tidings-render",
            daemon=True,
        )

        def start() -> None:
            try:
                process.start()
            finally:
                child_sock.close()  # the child has its own copy now

        self._launched[process] = None
        try:
            assert self._spawner is not None
            await loop.run_in_executor(self._spawner, start)
            exited = self._watch_exit(process)
            reader, writer = await asyncio.open_unix_connection(sock=parent_sock, limit=_READ_LIMIT)
        except BaseException:
            parent_sock.close()  # a child that did start sees the hang-up and exits
            raise
        worker = _Worker(process, reader, writer, exited)
        try:
            kind, _pid = await asyncio.wait_for(
                worker.receive(), timeout=self.config.start_timeout_s
            )
            if kind != "ready":
                raise RuntimeError(f"a render worker said {kind!r} instead of 'ready'")
        except (asyncio.IncompleteReadError, ConnectionError):
            worker.retired = True
            worker.kill()
            code = await asyncio.wait_for(asyncio.shield(exited), timeout=5)
            raise RuntimeError(
                f"the render worker exited before it was ready ({_describe_exit(code)}); "
                "its error, if any, is on standard error"
            ) from None
        except BaseException:
            worker.retired = True
            worker.kill()
            raise
        return worker

    def _watch_exit(self, process: BaseProcess) -> asyncio.Future[int | None]:
        """A future of ``process``'s exit code, set when it exits (without polling)."""
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[int | None] = loop.create_future()
        self._launched[process] = exited
        sentinel = process.sentinel

        def on_exit() -> None:
            loop.remove_reader(sentinel)
            code = process.exitcode
            with contextlib.suppress(ValueError):
                process.close()
            self._launched.pop(process, None)
            if not exited.done():
                exited.set_result(code)
            for worker in list(self._workers):
                if worker.process is process and worker in self._idle:
                    log.warning("a render worker died while idle; replacing it", exit=code)
                    self._retire(worker)

        loop.add_reader(sentinel, on_exit)
        return exited


def _forkserver_preload(modules: tuple[str, ...]) -> list[str]:
    """What the fork server imports once, so that each child starts with it imported.

    multiprocessing also re-runs the parent's main module in each child; preloading it
    (``__main__`` for a script, its name for ``python -m``) makes that cheap.
    """
    names = ["__main__", *modules]
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    main_name = getattr(spec, "name", None)
    if isinstance(main_name, str) and not main_name.endswith("__main__"):
        names.append(main_name)
    return names


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


__all__ = [
    "PoolBusy",
    "PoolClosed",
    "PoolConfig",
    "RenderCrashed",
    "RenderFailure",
    "RenderOutOfMemory",
    "RenderPool",
    "RenderTimedOut",
    "WorkerStopped",
    "default_size",
]
