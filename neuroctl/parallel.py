"""The one place where neuroctl submits independent pieces of work to other processes.

Every function of neuroctl that does many independent pieces (sub-boxes of a branch and bound,
verification instances, the points of a sweep) calls :func:`map_tasks`. It takes any
:class:`concurrent.futures.Executor` (a local :class:`~concurrent.futures.ProcessPoolExecutor`,
:class:`RayExecutor` for a Ray cluster, dask's executor, ...) and gives the same results, in
submission order, as the sequential loop run without one:

- results come back in the order the tasks were given, whatever order they finish in;
- a task's seed is derived from the task's index (:func:`task_seeds`), never from the worker;
- tasks travel with cloudpickle, so closures (a plant's ``rhs``, a constraint's lambda) work;
- a task whose worker dies (killed process, lost node) is submitted again, up to ``retries``
  times, to a fresh pool where the pool itself broke; after that its result is a :class:`Failed`
  marker, which the caller turns into "unknown" — never into a verdict.

Ray is imported lazily (``pip install "neuroctl[dist]"``); nothing here needs it otherwise.
"""

from __future__ import annotations

import concurrent.futures as cf
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import cloudpickle
import numpy as np

__all__ = ["Failed", "ProcessPool", "RayExecutor", "make_executor", "map_tasks", "task_seeds"]

_RAY_HINT = 'Ray is needed for a cluster: pip install "neuroctl[dist]" (or "ray[default]")'


@dataclass(frozen=True)
class Failed:
    """Marker result of a task whose worker died on every attempt.

    Attributes
    ----------
    index : int
        Position of the task in the submission order.
    error : str
        The last error seen (type and message).
    """

    index: int
    error: str


def task_seeds(seed: int, n: int) -> list[int]:
    """Independent seeds of ``n`` tasks derived from one seed (``numpy.random.SeedSequence``).

    Task ``i`` gets the same seed whatever the number of workers, so results do not depend on how
    the work is spread.

    Parameters
    ----------
    seed : int
    n : int

    Returns
    -------
    list of int, length n
    """
    if not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed: expected an int, received {type(seed).__name__}")
    if not (isinstance(n, (int, np.integer)) and n >= 0):
        raise ValueError(f"n: expected a non-negative int, received {n!r}")
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(int(seed)).spawn(int(n))]


def _ray():
    try:
        import ray
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError(_RAY_HINT) from e
    return ray


def _ray_call(fn, args):
    return fn(*args)


class RayExecutor(cf.Executor):
    """A :class:`concurrent.futures.Executor` whose tasks are Ray remote tasks.

    Each :meth:`submit` is one ``ray.remote`` task (``max_retries`` re-executions by Ray when its
    worker process dies); the future it returns is Ray's own ``ObjectRef.future()``.

    Parameters
    ----------
    address : str, optional, keyword-only
        Cluster to join (``"auto"``: the one running on this machine, ``"ray://host:10001"``: a
        remote one). ``None`` starts a local instance unless Ray is already initialised.
    num_cpus : int, optional, keyword-only
        CPUs of a local instance started here.
    max_retries : int, keyword-only
        Re-executions of a task whose worker died.
    """

    def __init__(
        self, *, address: str | None = None, num_cpus: int | None = None, max_retries: int = 1
    ):
        ray = _ray()
        if not ray.is_initialized():
            if address is not None and num_cpus is not None:
                raise ValueError(
                    f"num_cpus: the CPUs of a cluster joined at {address!r} are its own; "
                    f"received num_cpus={num_cpus}"
                )
            ray.init(
                address=address, num_cpus=num_cpus, include_dashboard=False, log_to_driver=False
            )
        self._remote = ray.remote(max_retries=int(max_retries))(_ray_call)
        self._shutdown = False

    def submit(self, fn, /, *args, **kwargs):
        if self._shutdown:
            raise RuntimeError("submit: this RayExecutor has been shut down")
        if kwargs:
            raise TypeError("submit: RayExecutor takes positional arguments only")
        return self._remote.remote(fn, args).future()

    def shutdown(self, wait=True, *, cancel_futures=False):
        self._shutdown = True


def make_executor(*, workers: int | None = None, ray: str | None = None):
    """The executor of ``--workers N`` / ``--ray ADDRESS``: None (sequential), processes or Ray.

    Parameters
    ----------
    workers : int, optional, keyword-only
        Local worker processes; ``None`` or 1 is sequential (returns None).
    ray : str, optional, keyword-only
        Ray address (``"auto"`` joins the running cluster; ``"local"`` starts one here with
        ``workers`` CPUs).

    Returns
    -------
    concurrent.futures.Executor or None
    """
    if workers is not None and not (isinstance(workers, (int, np.integer)) and workers >= 1):
        raise ValueError(f"workers: expected a positive int, received {workers!r}")
    if ray is not None:
        if not isinstance(ray, str):
            raise TypeError(f"ray: expected an address string, received {type(ray).__name__}")
        if ray == "local":
            return RayExecutor(num_cpus=workers)
        return RayExecutor(address=ray)
    if workers is None or workers == 1:
        return None
    return ProcessPool(int(workers))


def _plan(executor, workers):
    """``None`` (run in this process) or ``(executor, workers, width)``, validated.

    ``width``: the pieces a batch of independent work is cut into, one per worker (``workers``,
    the executor's ``_max_workers``, else 4). ``executor`` None with ``workers`` > 1: the caller
    makes one :class:`ProcessPool` of ``workers`` processes for its whole search.
    """
    if executor is not None and not isinstance(executor, cf.Executor):
        raise TypeError(
            "executor: expected a concurrent.futures.Executor (ProcessPoolExecutor, "
            f"neuroctl.parallel.RayExecutor, ...), received {type(executor).__name__}"
        )
    if workers is not None and not (
        isinstance(workers, (int, np.integer)) and not isinstance(workers, bool) and workers >= 1
    ):
        raise ValueError(f"workers: expected a positive int, received {workers!r}")
    if executor is None and (workers is None or workers == 1):
        return None
    width = int(workers) if workers else int(getattr(executor, "_max_workers", 0) or 4)
    return executor, (None if workers is None else int(workers)), width


def map_tasks(
    fn,
    arg_list,
    *,
    executor: cf.Executor | None = None,
    workers: int | None = None,
    retries: int = 1,
) -> list:
    """``[fn(*args) for args in arg_list]``, spread over an executor, in submission order.

    Parameters
    ----------
    fn : callable
        Picklable (a module-level function) when an executor is used.
    arg_list : iterable of tuple
        Positional arguments of each task.
    executor : concurrent.futures.Executor, optional, keyword-only
        Where the tasks run; not shut down here.
    workers : int, optional, keyword-only
        Without ``executor``: a local ``ProcessPoolExecutor`` of this many processes for this call
        (``None`` or 1: sequential, in this process).
    retries : int, keyword-only
        Resubmissions of a task whose worker died. An exception raised by ``fn`` itself is not a
        worker failure: it propagates, as it would sequentially.

    Returns
    -------
    list
        One result per task, in the order of ``arg_list``; a :class:`Failed` where every attempt
        lost its worker.
    """
    if executor is not None and not isinstance(executor, cf.Executor):
        raise TypeError(
            "executor: expected a concurrent.futures.Executor (ProcessPoolExecutor, "
            f"neuroctl.parallel.RayExecutor, ...), received {type(executor).__name__}"
        )
    if workers is not None and not (isinstance(workers, (int, np.integer)) and workers >= 1):
        raise ValueError(f"workers: expected a positive int, received {workers!r}")
    if not (isinstance(retries, (int, np.integer)) and retries >= 0):
        raise ValueError(f"retries: expected a non-negative int, received {retries!r}")
    args = [tuple(a) for a in arg_list]
    if executor is not None:
        return _run(fn, args, executor, int(retries), None)
    if workers is None or workers == 1:
        return [fn(*a) for a in args]
    return _run(fn, args, None, int(retries), int(workers))


def _lost_worker(err: BaseException) -> bool:
    if isinstance(err, BrokenProcessPool):
        return True
    # Ray: the worker process or its node died (after Ray's own retries).
    return type(err).__name__ in (
        "WorkerCrashedError",
        "NodeDiedError",
        "OwnerDiedError",
        "ObjectLostError",
        "LocalRayletDiedError",
    )


def _call_blob(blob: bytes):
    fn, args = cloudpickle.loads(blob)
    return fn(*args)


def _submit(ex, fn, args):
    # cloudpickle (a dependency of gymnasium) carries closures and lambdas (a plant's rhs, a
    # property's constraint) that the standard pickle of a process pool refuses; Ray uses it too.
    if isinstance(ex, RayExecutor):
        return ex.submit(fn, *args)
    return ex.submit(_call_blob, cloudpickle.dumps((fn, args)))


def _run(fn, args, ex, retries, workers):
    """Submit, collect in order, resubmit the tasks that lost their worker.

    ``ex is None``: a :class:`ProcessPool` of ``workers`` processes is made for this call. A
    broken plain ``ProcessPoolExecutor`` of the caller cannot take resubmissions: its unfinished
    tasks are Failed.
    """
    own = ex is None
    if own:
        ex = ProcessPool(workers)
    results: list = [None] * len(args)
    todo = list(range(len(args)))
    attempt = 0
    try:
        while todo:
            futures = {i: _submit(ex, fn, args[i]) for i in todo}
            lost: list[int] = []
            broken = False
            for i in todo:
                try:
                    results[i] = futures[i].result()
                except Exception as err:  # noqa: BLE001 - sorted below
                    if not _lost_worker(err):
                        raise
                    results[i] = Failed(i, f"{type(err).__name__}: {err}")
                    lost.append(i)
                    broken = broken or isinstance(err, BrokenProcessPool)
            if not lost or attempt >= retries:
                break
            if broken and not isinstance(ex, ProcessPool):
                break
            attempt += 1
            todo = lost
    finally:
        if own:
            ex.shutdown(wait=True, cancel_futures=True)
    return results


class ProcessPool(cf.Executor):
    """A local process pool that replaces itself when one of its workers dies.

    A ``ProcessPoolExecutor`` whose worker is killed is broken for good; this one starts a fresh
    ``ProcessPoolExecutor`` at the next :meth:`submit`, so lost tasks can be resubmitted (the
    futures of the broken pool still fail, and :func:`map_tasks` resubmits them).

    Parameters
    ----------
    workers : int
        Worker processes.
    """

    def __init__(self, workers: int):
        if not (isinstance(workers, (int, np.integer)) and workers >= 1):
            raise ValueError(f"workers: expected a positive int, received {workers!r}")
        self._workers = int(workers)
        self._pool = cf.ProcessPoolExecutor(max_workers=self._workers)

    def submit(self, fn, /, *args, **kwargs):
        try:
            return self._pool.submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = cf.ProcessPoolExecutor(max_workers=self._workers)
            return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait=True, *, cancel_futures=False):
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)
