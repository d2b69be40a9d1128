"""Work over many symbols in parallel: a local process pool by default, a Dask cluster on request.

Why Dask and not a scheduler of our own (docs/architecture.md, "Scaling out"): ``distributed`` is
pure Python, installs with pip, runs the very same function on a laptop's ``LocalCluster`` and on a
cluster of machines given its scheduler address, and needs nothing but the address on our side.
(Ray would do the job too, but brings a large native wheel and its own daemons on every host.)

``parallel_map`` yields ``(item, result)`` pairs as they complete, so the caller — the one process
that writes manifests and shared files — records each result when it arrives and an interruption
loses only the unfinished items. Functions and items must be picklable (module-level functions,
plain data); a ``HeqisError`` raised in a worker reaches the caller with its hint.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from heqis.errors import HeqisError, InvalidValue

T = TypeVar("T")
R = TypeVar("R")

LOCAL_CLUSTER = "local"   # --cluster local: a Dask LocalCluster on this machine (tests, trying it out)


def default_workers() -> int:
    """Cores this process may use (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Parallel:
    """How to spread work: ``workers`` processes here, or the Dask scheduler at ``cluster``."""

    workers: int = 1
    cluster: str | None = None

    @classmethod
    def of(cls, workers: int | None, cluster: str | None = None) -> Parallel:
        if workers is not None and workers < 1:
            raise InvalidValue("--workers", f"{workers} is not a number of processes", hint="use 1 or more")
        if cluster is not None and cluster != LOCAL_CLUSTER and "://" not in cluster:
            raise InvalidValue("--cluster", f"'{cluster}' is not a scheduler address",
                               hint="tcp://HOST:8786, or 'local' for a Dask cluster on this machine")
        return cls(workers or default_workers(), cluster)

    def describe(self) -> str:
        if self.cluster:
            return f"dask {self.cluster}" + (f" ({self.workers} workers)" if self.cluster == LOCAL_CLUSTER else "")
        return f"{self.workers} process{'es' if self.workers != 1 else ''}"


def parallel_map(fn: Callable[[T], R], items: Iterable[T], how: Parallel | None = None,
                 initializer: Callable[..., Any] | None = None, initargs: tuple = ()) -> Iterator[tuple[T, R]]:
    """``fn(item)`` for every item, yielded as ``(item, result)`` in completion order.

    One worker (or one item) runs in this process: no pool to start, exceptions as they are.
    """
    how = how or Parallel()
    todo = list(items)
    if how.cluster:
        yield from _dask_map(fn, todo, how, initializer, initargs)
        return
    if how.workers <= 1 or len(todo) <= 1:
        if initializer is not None:
            initializer(*initargs)
        for item in todo:
            yield item, fn(item)
        return
    # spawn, not fork: the parent may hold torch's and OpenMP's thread pools, which fork does not survive
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(how.workers, len(todo)), mp_context=ctx, initializer=initializer,
                             initargs=initargs) as pool:
        pending: dict[Future, T] = {}
        it = iter(todo)
        # keep at most two tasks per worker queued, so an interruption cancels the rest cheaply
        for item in it:
            pending[pool.submit(fn, item)] = item
            if len(pending) >= 2 * how.workers:
                break
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    item = pending.pop(fut)
                    yield item, fut.result()
                    nxt = next(it, None)
                    if nxt is not None:
                        pending[pool.submit(fn, nxt)] = nxt
        finally:
            for fut in pending:
                fut.cancel()


def _dask_map(fn: Callable[[T], R], todo: list[T], how: Parallel, initializer: Callable[..., Any] | None,
              initargs: tuple) -> Iterator[tuple[T, R]]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise HeqisError("--cluster needs Dask's distributed package",
                         hint="pip install 'distributed' (part of heqis[research])") from None
    # distributed sets its own loggers to INFO: a run's output would fill with its scheduler's chatter;
    # it says as much as the rest of heqis does (warnings; everything with --verbose)
    logging.getLogger("distributed").setLevel(logging.getLogger().level or logging.WARNING)
    cluster = None
    try:
        if how.cluster == LOCAL_CLUSTER:
            cluster = LocalCluster(n_workers=how.workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.CRITICAL)
            client = Client(cluster)
        else:
            client = Client(how.cluster, timeout="30s")
    except OSError as exc:
        raise HeqisError(f"cannot reach the Dask scheduler at {how.cluster}: {exc}",
                         hint="start one with 'dask scheduler' and workers with 'dask worker ADDRESS'") from None
    try:
        if initializer is not None:
            client.run(initializer, *initargs)
        futures = client.map(fn, todo, pure=False)
        index = {f.key: item for f, item in zip(futures, todo, strict=True)}
        for fut in as_completed(futures):
            yield index[fut.key], fut.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
