"""Where independent jobs run: in this process, on local worker processes, or as Ray tasks.

Cross-validation folds, learning-curve subsets and the candidates of a nested search are
independent trainings; they are the same plain function mapped over more workers, as
``annotate apply`` maps its batches. ``local`` with one worker runs each job in this process
when its result is asked for (so progress events and test spies see it); with more, a
``concurrent.futures`` pool of *spawned* processes (no fork of a process that holds threads and
models); ``ray`` submits Ray tasks to the cluster at ``RAY_ADDRESS`` or to a local Ray started
for the job. Results do not depend on the engine: every job is a deterministic function of its
arguments.

Each worker gets its share of the cores for the numeric libraries' own threads (OpenBLAS, OpenMP:
``cores // workers``, at least 1): numpy's OpenBLAS otherwise starts one thread per core in every
worker, and ``workers`` × cores threads on the same cores only wait for each other. Ray does the
same for its tasks (``OMP_NUM_THREADS`` = the task's CPUs).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any, Protocol

from annotate.errors import AnnotateError, InputError

ENGINES = ("local", "ray")


def default_workers() -> int:
    """The cores this process may use (its CPU affinity where the system has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """The numeric libraries' threads each of ``workers`` processes may start: its share of the cores, at least 1."""
    return max(1, (cores or default_workers()) // max(1, workers))


@contextmanager
def thread_limits(threads: int) -> Iterator[None]:
    """Inside the block, processes started from here load OpenBLAS/OpenMP/MKL/BLIS with ``threads`` threads each.

    The variables are read when a library loads, so they are set here, in the environment the
    spawned workers inherit (already loaded libraries of this process keep their threads), and
    put back as they were when the block ends.
    """
    before = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def check_workers(workers: int, engine: str) -> None:
    """Refuse a bad ``--workers`` or ``--engine`` before any work starts."""
    if engine not in ENGINES:
        raise InputError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if workers < 1:
        raise InputError(f"--workers must be at least 1, not {workers}")


class Pool(Protocol):
    """Submit a job now, collect its result later; ``workers`` jobs run at once."""

    workers: int
    in_process: bool

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any: ...

    def result(self, handle: Any) -> Any: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...


class _InProcess:
    """Runs each job when its result is asked for, in this process."""

    workers = 1
    in_process = True

    def submit(self, fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
        return lambda: fn(*args)

    def result(self, handle: Callable[[], Any]) -> Any:
        return handle()

    def pause(self) -> None:
        """Nothing to stop: the jobs run on the caller's thread."""

    def resume(self) -> None:
        pass


class _Processes:
    in_process = False

    def __init__(self, executor: ProcessPoolExecutor, workers: int, pausable: bool = False) -> None:
        self._executor = executor
        self.workers = workers
        self._pausable = pausable

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        return self._executor.submit(fn, *args)

    def result(self, handle: Future) -> Any:
        return handle.result()

    def pause(self) -> None:
        """Stop the workers where they are (SIGSTOP) until :meth:`resume`; only a pausable pool's (they die with it)."""
        if self._pausable:
            self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._pausable:
            self._signal(signal.SIGCONT)

    def _signal(self, number: int) -> None:
        # The executor's {pid: process} of the workers started so far (they start as jobs arrive).
        for pid in list(getattr(self._executor, "_processes", None) or ()):
            with suppress(ProcessLookupError):
                os.kill(pid, number)


class _RayTasks:
    in_process = False

    def __init__(self, ray: Any, workers: int) -> None:
        self._ray = ray
        self._remote: dict[Callable, Any] = {}
        self.workers = workers

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        if fn not in self._remote:
            self._remote[fn] = self._ray.remote(num_cpus=1, max_retries=0)(fn)
        return self._remote[fn].remote(*args)

    def result(self, handle: Any) -> Any:
        try:
            return self._ray.get(handle)
        except Exception as exc:
            ours = our_error(exc)
            if ours is None:
                raise
            raise type(ours)(str(ours)) from None

    def pause(self) -> None:
        """Ray tasks run where the cluster puts them: not stopped."""

    def resume(self) -> None:
        pass


@contextmanager
def ray_session(workers: int) -> Iterator[Any]:
    """Ray, connected to ``RAY_ADDRESS`` when set (every node must see the same paths), else started here.

    A Ray this function started is shut down when the block ends; one already running is left alone.
    """
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        if os.environ.get("RAY_ADDRESS"):
            check_ray_address(os.environ["RAY_ADDRESS"], ray_connect_timeout())
            ray.init(logging_level=logging.ERROR, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()


RAY_CONNECT_TIMEOUT_ENV = "ANNOTATE_RAY_CONNECT_TIMEOUT"
RAY_CONNECT_TIMEOUT = 30.0


def ray_connect_timeout() -> float:
    """How long apply waits for the cluster at RAY_ADDRESS to answer (ANNOTATE_RAY_CONNECT_TIMEOUT, seconds)."""
    raw = os.environ.get(RAY_CONNECT_TIMEOUT_ENV, "")
    if not raw:
        return RAY_CONNECT_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < 86_400:
        raise InputError(f"{RAY_CONNECT_TIMEOUT_ENV} must be a number of seconds above 0, not {raw!r}")
    return seconds


def check_ray_address(address: str, timeout: float) -> None:
    """Ask the cluster at ``address`` (``host:port`` or ``ray://host:port``) for a gRPC handshake, within ``timeout``.

    ``ray.init`` retries an address that accepts connections but never answers for ever; this
    makes it one line instead. ``auto`` and other forms are left to Ray.
    """
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return
    import grpc

    channel = grpc.insecure_channel(target)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise InputError(f"RAY_ADDRESS {address}: no Ray cluster answered within {timeout:g} s") from None
    finally:
        channel.close()


def our_error(exc: BaseException) -> AnnotateError | None:
    """The toolkit error a worker raised, unwrapped from Ray's task and user-code errors."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__module__ == "annotate.errors":
            return current  # type: ignore[return-value]
        current = getattr(current, "cause", None) or current.__cause__
    return None


PR_SET_PDEATHSIG = 1  # prctl(2)


def end_with_parent(parent: int) -> None:
    """In a worker process: the kernel kills it (SIGKILL, which also ends a stopped process) when its parent dies.

    A paused worker cannot notice that its pool is gone; without this it would stay stopped, its
    memory held, for ever. (Strictly, the kernel sends the signal when the *thread* that started the
    worker ends: the pool's workers start on the thread that submits jobs.) Linux only; elsewhere
    nothing changes.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl: no signal will come
        os._exit(1)


@contextmanager
def worker_pool(workers: int = 1, engine: str = "local", *, pausable: bool = False) -> Iterator[Pool]:
    """A pool for the block: in-process for one local worker, else spawned processes or Ray tasks.

    ``pausable``: the jobs run in local worker processes, even one, which may be stopped and
    resumed (:meth:`Pool.pause`); they end with the process that started them
    (:func:`end_with_parent`), so the thread that submits the jobs must outlive the pool.
    """
    check_workers(workers, engine)
    if engine == "ray":
        with ray_session(workers) as ray:
            yield _RayTasks(ray, workers)
    elif workers == 1 and not pausable:
        yield _InProcess()
    else:
        context = multiprocessing.get_context("spawn")
        with (
            thread_limits(threads_per_worker(workers)),
            ProcessPoolExecutor(
                max_workers=workers,
                mp_context=context,
                initializer=end_with_parent if pausable else None,
                initargs=(os.getpid(),) if pausable else (),
            ) as executor,
        ):
            yield _Processes(executor, workers, pausable)
