"""Prometheus metrics (prometheus_client) and the health endpoints, on one small HTTP listener.

``/metrics`` is prometheus_client's exposition of the agent's own registry; ``/healthz`` says
the process and its event loop respond; ``/readyz`` says the agent is connected, listening and
has loaded its queue. The listener runs in a thread so a busy event loop cannot hide itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DURATION_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)


def _alert_metrics(r: CollectorRegistry) -> tuple[Counter, Gauge]:
    alerts = Counter(
        "notifyagent_alerts",
        "Alerts, by event and outcome (sent; failed: the destination refused or timed out "
        "after the retries; dropped: the queue overflowed)",
        ["event", "outcome"],
        registry=r,
    )
    overdue = Gauge(
        "notifyagent_jobs_overdue",
        "Enabled jobs due for longer than missed_grace that no agent runs",
        registry=r,
    )
    return alerts, overdue


def _run_metrics(r: CollectorRegistry) -> tuple[Counter, Counter, Histogram]:
    started = Counter("notifyagent_runs_started", "Job runs started", registry=r)
    finished = Counter(
        "notifyagent_runs_finished", "Job runs finished, by status", ["status"], registry=r
    )
    duration = Histogram(
        "notifyagent_run_duration_seconds",
        "Duration of job runs, by status",
        ["status"],
        buckets=DURATION_BUCKETS,
        registry=r,
    )
    return started, finished, duration


class Metrics:
    """Every metric of one agent, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # No label names a job: the number of series stays the same with 10 or 100,000 jobs
        # (a job's own history is in pga_joblog, and in `notifyagent history`).
        self.runs_started, self.runs_finished, self.run_duration = _run_metrics(r)
        self.step_duration = Histogram(
            "notifyagent_step_duration_seconds",
            "Duration of job steps",
            ["kind", "status"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.start_lag = Histogram(
            "notifyagent_start_lag_seconds",
            "Time from a job's due time (jobnextrun) to the start of its first step",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.queue_size = Gauge("notifyagent_queue_size", "Jobs in the due-queue", registry=r)
        self.next_due = Gauge(
            "notifyagent_next_due_seconds",
            "Seconds until the next due job (negative: overdue; NaN: none)",
            registry=r,
        )
        self.running = Gauge("notifyagent_running_jobs", "Jobs running now", registry=r)
        self.notifications = Counter(
            "notifyagent_notifications", "Notifications received", ["kind"], registry=r
        )
        self.reconnects = Counter(
            "notifyagent_reconnects", "Reconnections of the LISTEN connection", registry=r
        )
        self.liveness = Counter(
            "notifyagent_liveness_checks", "Liveness checks, by result", ["result"], registry=r
        )
        self.zombies = Counter(
            "notifyagent_dead_agents_cleaned", "Dead agents cleaned up", registry=r
        )
        self.history_deleted = Counter(
            "notifyagent_history_deleted", "Runs deleted by history retention", registry=r
        )
        self.annotation_errors = Gauge(
            "notifyagent_annotation_errors",
            "Annotations in pgAdmin's job comments and step descriptions that do not parse "
            "and are ignored",
            registry=r,
        )
        self.alerts, self.overdue = _alert_metrics(r)
        self.connected = Gauge(
            "notifyagent_connected", "1 while the LISTEN connection is up", registry=r
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _loop_responds(loop: asyncio.AbstractEventLoop, timeout: float = 2.0) -> bool:
    """Whether ``loop`` runs a trivial coroutine within ``timeout`` (called from another thread)."""

    async def pong() -> bool:
        return True

    try:
        return asyncio.run_coroutine_threadsafe(pong(), loop).result(timeout)
    except (concurrent.futures.TimeoutError, RuntimeError):
        return False


class HealthServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on ``address``, served from a thread."""

    def __init__(
        self,
        address: tuple[str, int],
        metrics: Metrics,
        loop: asyncio.AbstractEventLoop,
        ready: Callable[[], tuple[bool, str]],
    ) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, metrics.exposition(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    ok = _loop_responds(loop)
                    self._send(200 if ok else 503, b"ok\n" if ok else b"event loop stuck\n")
                elif path == "/readyz":
                    ok, why = ready()
                    self._send(200 if ok else 503, (why + "\n").encode())
                else:
                    self._send(404, b"not found: try /metrics, /healthz or /readyz\n")

            def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: scrapes are not news."""

        self.httpd = ThreadingHTTPServer(address, Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
