"""Alert delivery through Apprise, off the scheduling path.

Alerts wait in a bounded queue (the oldest is dropped, and counted, when it overflows) and one
task delivers them, each destination in a thread of a small pool of its own (Apprise's notify
blocks), with a time limit per attempt and a few attempts with growing delays. A destination
that is down costs a log line and a metric, never a delayed job. Destinations are shown only
as ``scheme://host``: their tokens and passwords stay out of logs and metrics.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
from collections.abc import Callable, Sequence

import apprise
from loguru import logger

from notifyagent.core import backoff
from notifyagent.core.alert_text import Alert, Event
from notifyagent.core.alerts import redact
from notifyagent.obs.metrics import Metrics

#: Alerts waiting for delivery at most; then the oldest is dropped.
QUEUE_SIZE = 256
#: Attempts per destination, and the delay before the second (it doubles).
ATTEMPTS = 3
FIRST_RETRY = 0.5
#: Threads delivering at once: a few hanging destinations cannot take more.
THREADS = 4
_JSON = ("json://", "jsons://")
_TYPES = {
    Event.RECOVERED: apprise.NotifyType.SUCCESS,
    Event.SUCCEEDED: apprise.NotifyType.SUCCESS,
    Event.TEST: apprise.NotifyType.INFO,
}

# Apprise's own log lines may carry a destination's URL: ours say what happened instead.
logging.getLogger("apprise").setLevel(logging.CRITICAL)


def send(url: str, alert: Alert, timeout: float) -> str | None:
    """Deliver ``alert`` to one Apprise URL (blocking); None when accepted, else why not.
    JSON webhooks get the alert's JSON document as the message, the others its text."""
    sender = apprise.Apprise()
    if not sender.add(url):
        return "not a URL Apprise knows (see its list of services)"
    for server in sender:
        server.socket_connect_timeout = timeout
        server.socket_read_timeout = timeout
    body = alert.json() if url.lower().startswith(_JSON) else alert.body()
    kind = _TYPES.get(alert.event, apprise.NotifyType.FAILURE)
    if sender.notify(body=body, title=alert.title, notify_type=kind):
        return None
    return "not accepted (unreachable, refused or an error answer)"


class Outbox:
    def __init__(
        self, timeout: Callable[[], float], metrics: Metrics, size: int = QUEUE_SIZE
    ) -> None:
        self._timeout = timeout
        self._metrics = metrics
        self._size = size
        self._items: collections.deque[tuple[Alert, tuple[str, ...]]] = collections.deque()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._threads = concurrent.futures.ThreadPoolExecutor(
            THREADS, thread_name_prefix="notifyagent-alert"
        )

    def put(self, alert: Alert, urls: Sequence[str]) -> None:
        """Queue ``alert`` for ``urls`` (never waits)."""
        if not urls:
            return
        if len(self._items) >= self._size:
            old, _ = self._items.popleft()
            self._metrics.alerts.labels(old.event, "dropped").inc()
            logger.warning("alert queue full: dropped the oldest alert ({})", old.title)
        self._items.append((alert, tuple(urls)))
        self._idle.clear()
        self._ready.set()

    async def run_forever(self) -> None:
        """Deliver queued alerts, up to :data:`THREADS` at once (a destination that hangs
        holds up one slot, not the alerts behind it)."""
        slots = asyncio.Semaphore(THREADS)
        sending: set[asyncio.Task[None]] = set()

        def done(task: asyncio.Task[None]) -> None:
            sending.discard(task)
            slots.release()
            if not sending and not self._items:
                self._idle.set()

        while True:
            await self._ready.wait()
            while self._items:
                await slots.acquire()
                if not self._items:  # dropped while we waited
                    slots.release()
                    break
                task = asyncio.ensure_future(self.deliver(*self._items.popleft()))
                sending.add(task)
                task.add_done_callback(done)
            self._ready.clear()
            if not sending:
                self._idle.set()

    async def flush(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the queue to be delivered (at shutdown)."""
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            logger.warning("{} alert(s) not delivered before shutdown", len(self._items) + 1)

    async def deliver(self, alert: Alert, urls: Sequence[str]) -> None:
        await self.results(alert, urls)

    async def results(self, alert: Alert, urls: Sequence[str]) -> list[str | None]:
        """Deliver to every destination at once; per destination None or why it failed."""
        return list(await asyncio.gather(*(self._one(alert, url) for url in urls)))

    async def _one(self, alert: Alert, url: str) -> str | None:
        where = redact(url)
        why: str | None = None
        timeout = self._timeout()
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(backoff.delay(FIRST_RETRY, attempt - 1))
            job = self._threads.submit(send, url, alert, timeout)
            try:
                async with asyncio.timeout(timeout + 1.0):
                    why = await asyncio.wrap_future(job)
            except TimeoutError:
                why = f"no answer in {timeout:g}s"
            except Exception as err:  # Apprise's own failure must not end the delivery task
                why = f"{type(err).__name__}"
            if why is None:
                self._metrics.alerts.labels(alert.event, "sent").inc()
                logger.info("alert {!r} sent to {}", alert.title, where)
                return None
            logger.debug("alert to {}: attempt {} of {}: {}", where, attempt + 1, ATTEMPTS, why)
        self._metrics.alerts.labels(alert.event, "failed").inc()
        logger.warning(
            "alert {!r} not delivered to {} after {} attempts: {}",
            alert.title,
            where,
            ATTEMPTS,
            why,
        )
        return why

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
