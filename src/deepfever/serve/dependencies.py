"""FastAPI dependencies: the service, a work slot (admission), the index, and a guard for the work itself."""
from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Annotated, AsyncIterator, Awaitable, Callable, TypeVar

from fastapi import Depends, Request

from deepfever.serve._edge import RETRY_AFTER_S, Admission, ClientGone, ServerBusy
from deepfever.serve._service import ExpressionService

T = TypeVar("T")


def get_service(request: Request) -> ExpressionService:
    """The one service of this app (started by the lifespan)."""
    return request.app.state.service


Service = Annotated[ExpressionService, Depends(get_service)]


async def work_slot(request: Request, service: Service) -> AsyncIterator[None]:
    """Hold one of ``max_concurrency`` work slots for the request; 503 + ``Retry-After`` when none is free.

    FastAPI resolves dependencies after reading the body, so the slot is taken only once the whole
    upload has arrived: slow uploaders cannot hold slots.
    """
    admission: Admission = request.app.state.admission
    if not admission.try_enter():
        service.counters_.refused_busy += 1
        raise ServerBusy(f"server busy: {admission.in_flight} requests in flight (--max-concurrency "
                         f"{admission.limit}); retry after {RETRY_AFTER_S} s")
    service.counters_.requests += 1
    try:
        yield
    finally:
        admission.leave()


def get_index(service: Service):
    """The loaded ``FaceIndex``, or a 409 before any work when the server has none."""
    return service.require_index()


@dataclass
class Guard:
    """Runs a request's work unless its client disconnects or its time runs out; then the rest is skipped."""

    request: Request
    service: ExpressionService

    async def run(self, work: Callable[[threading.Event], Awaitable[T]]) -> T:
        cancelled = threading.Event()
        task = asyncio.ensure_future(work(cancelled))
        watcher = asyncio.ensure_future(self._wait_for_disconnect())
        try:
            done, _ = await asyncio.wait({task, watcher}, timeout=self.service.settings.request_timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
        if task in done:
            return task.result()
        cancelled.set()
        task.cancel()
        if watcher in done:
            self.service.counters_.disconnected += 1
            raise ClientGone()
        self.service.counters_.timed_out += 1
        raise ServerBusy(f"the request took longer than {self.service.settings.request_timeout_s:g} s (request time limit); "
                         "retry later or send a smaller image")

    async def _wait_for_disconnect(self) -> None:
        """Returns when the client closes the connection (the body has been read, so nothing else arrives)."""
        while (await self.request.receive())["type"] != "http.disconnect":
            pass


def get_guard(request: Request, service: Service) -> Guard:
    return Guard(request, service)
