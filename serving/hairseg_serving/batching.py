"""Micro-batching: requests that arrive while the network is busy run together.

The network runs on one dedicated thread (ONNX Runtime releases the GIL), so the event
loop keeps reading and decoding the next requests meanwhile; when the run finishes, every
waiting request (up to ``max_batch_size`` images) goes into the next run. Under no load a
request runs alone at once; ``window_s`` > 0 additionally waits that long for company.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable

import numpy as np

from hairseg_serving.metrics import BATCH_SIZE

__all__ = ["MicroBatcher"]


class MicroBatcher:
    """Run ``run_batch`` (N,3,S,S) -> (N,...) over merged concurrent submissions."""

    def __init__(
        self,
        run_batch: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch_size: int,
        window_s: float = 0.0,
    ) -> None:
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.window_s = window_s
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hairseg-ort")
        self._pending: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = []
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, batch: np.ndarray) -> np.ndarray:
        """Queue ``batch`` (k images) and wait for its outputs."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            self._loop = loop
            self._wakeup = asyncio.Event()
            self._worker = loop.create_task(self._work(), name="hairseg-batcher")
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((batch, future))
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    async def _work(self) -> None:
        assert self._wakeup is not None and self._loop is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self.window_s > 0 and self._count() < self.max_batch_size:
                await asyncio.sleep(self.window_s)
            while self._pending:
                taken, size = [], 0
                # Always take at least one submission, even one larger than the limit.
                while self._pending and (
                    not taken or size + len(self._pending[0][0]) <= self.max_batch_size
                ):
                    item = self._pending.pop(0)
                    taken.append(item)
                    size += len(item[0])
                live = [(b, f) for b, f in taken if not f.cancelled()]
                if not live:
                    continue
                batch = live[0][0] if len(live) == 1 else np.concatenate([b for b, _ in live])
                BATCH_SIZE.observe(len(batch))
                try:
                    out = await self._loop.run_in_executor(self._executor, self._run_batch, batch)
                except Exception as exc:  # hand the failure to every waiting request
                    for _, f in live:
                        if not f.done():
                            f.set_exception(exc)
                    continue
                start = 0
                for b, f in live:
                    if not f.done():
                        f.set_result(out[start : start + len(b)])
                    start += len(b)

    def _count(self) -> int:
        return sum(len(b) for b, _ in self._pending)

    def close(self) -> None:
        """Stop the worker and the network thread (pending requests get cancelled)."""
        if self._worker is not None and not self._worker.done():
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self._worker.cancel()
        for _, f in self._pending:
            if not f.done():
                f.cancel()
        self._pending.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
