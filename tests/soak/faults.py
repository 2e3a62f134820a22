"""The fault injector: at random times (seeded), one fault after another, each followed by a
probe that shows the agents working again (a Run now of a job pinned to each station, which
must finish). The time from the end of the fault to the probes' end is its recovery time.

Kinds are dealt from a shuffled deck, so that every kind comes up once before any comes twice;
about four in ten faults are aimed at a minute boundary, where hundreds of jobs fall due.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from tests.compat.pgadmin import PgAdminSession
from tests.pg import fetch_rows, fetch_value
from tests.soak.fleet import AgentSlot, Fleet
from tests.soak.jobs import PgAdmin, server_now
from tests.soak.model import Request, Window
from tests.soak.sql import q
from tests.soak.topology import Pair

#: Recovery bound of each kind (seconds from the end of the fault until the probes finished):
#: reconnecting takes a backoff of at most 1 s, a start ~2 s (Python, the queue of a thousand
#: jobs), a stalled path is noticed after at most the liveness interval (2 s) + 10 s.
BOUNDS = {
    "restart-fast": 5.0, "restart-immediate": 5.0, "kill-listener": 5.0, "kill-steps": 5.0,
    "sigkill": 15.0, "sigterm": 15.0, "sighup": 5.0, "stall": 17.0, "failover": 10.0,
    "burst": 5.0, "restart+sigkill": 15.0, "burst+kill-listener": 5.0,
}  # fmt: skip
#: a killed agent's runs and claims are cleaned up by the others within 2 liveness intervals
#: plus a statement
CLEANUP_BOUND = 6.0
#: a stopped agent exits within its --shutdown-timeout (5 s) plus the release
EXIT_BOUND = 7.0


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Record:
    """What the faults and the workload did (appended to from their threads)."""

    windows: list[Window] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    problems: list[dict[str, object]] = field(default_factory=list)


class Injector:
    def __init__(self, pair: Pair, fleet: Fleet, pgadmin: PgAdmin, probes: dict[str, int],
                 record: Record, rng: random.Random) -> None:  # fmt: skip
        self.pair = pair
        self.fleet = fleet
        self.pgadmin = pgadmin
        self.probes = probes
        self.record = record
        self.rng = rng
        self.deck: list[str] = []
        self.stop = threading.Event()
        self.kinds: dict[str, Callable[[], Window]] = {
            "restart-fast": lambda: self.restart("fast"),
            "restart-immediate": lambda: self.restart("immediate"),
            "kill-listener": lambda: self.kill_listener(self.slot(any_agent=True)),
            "kill-steps": self.kill_steps,
            "sigkill": lambda: self.sigkill(self.slot()),
            "sigterm": self.sigterm,
            "sighup": self.sighup,
            "stall": self.stall,
            "failover": self.failover,
            "burst": self.burst,
            "restart+sigkill": self.restart_and_sigkill,
            "burst+kill-listener": self.burst_and_kill_listener,
        }

    # -- the loop ----------------------------------------------------------------------------

    def run(self, until: float) -> None:
        """Faults until ``until`` (monotonic) or :attr:`stop`."""
        while not self.stop.is_set():
            start = time.time() + self.rng.uniform(4.0, 12.0)
            boundary = (start // 60 + 1) * 60 - self.rng.uniform(0.0, 0.5)
            if boundary - start < 15 and self.rng.random() < 0.6:  # into the herd
                start = boundary
            if time.monotonic() + (start - time.time()) > until - 5:
                return
            if self.stop.wait(max(0.0, start - time.time())):
                return
            if not self.deck:
                self.deck = list(self.kinds)
                self.rng.shuffle(self.deck)
            kind = self.deck.pop()
            try:
                window = self.kinds[kind]()
            except Exception as err:  # a fault that failed is reported, not fatal
                self.record.problems.append({"kind": "fault_failed", "fault": kind,
                                             "error": repr(err)[:500]})  # fmt: skip
                continue
            self.record.windows.append(window)

    def slot(self, any_agent: bool = False) -> AgentSlot:
        """An agent to hit; the first station's agent is never killed (its memory is followed
        over the whole soak)."""
        slots = list(self.fleet.slots.values())
        return self.rng.choice(slots if any_agent else slots[1:])

    # -- probes ------------------------------------------------------------------------------

    def probe(self, stations: list[str] | None = None, deadline: float = 60.0) -> float:
        """Run now the probe job of each station; the moment the last of them finished
        (monotonic clock). A probe that never finishes is a problem."""
        stations = stations or list(self.fleet.slots)
        end = time.monotonic() + deadline
        asked: dict[int, datetime] = {}
        while time.monotonic() < end:
            try:
                session = PgAdminSession(self.pair.primary.dsn("soak", connect_timeout="2"))
                try:
                    for st in stations:
                        job = self.probes[st]
                        if job not in asked:
                            at = server_now(session)
                            self.pgadmin.request_run(session, job)
                            asked[job] = at
                            self.record.requests.append(Request(job, at))
                    while time.monotonic() < end:
                        done = fetch_value(session.conn, q("probes_done"),
                                           (list(asked), list(asked.values())))  # fmt: skip
                        if done == len(stations):
                            return time.monotonic()
                        time.sleep(0.02)
                finally:
                    session.close()
            except psycopg.Error:
                time.sleep(0.1)
        self.record.problems.append({"kind": "not_recovered", "stations": stations,
                                     "at": now().isoformat()})  # fmt: skip
        return time.monotonic()

    def window(self, kind: str, start: datetime, t_end: float, t_back: float, station: str = "",
               relaxes: bool = False, **detail: object) -> Window:  # fmt: skip
        recovery = t_back - t_end
        bound = BOUNDS[kind]
        if recovery > bound:
            self.record.problems.append({"kind": "slow_recovery", "fault": kind,
                                         "recovery_s": recovery, "bound_s": bound,
                                         "at": start.isoformat()})  # fmt: skip
        end = now()
        detail = {"recovery_s": round(recovery, 3), "bound_s": bound, **detail}
        return Window(kind, start, end, station, relaxes, detail=detail)

    # -- the faults --------------------------------------------------------------------------

    def restart(self, mode: str, kind: str = "") -> Window:
        start = now()
        with self.pair.lock:
            self.pair.primary.restart(mode)
        up = time.monotonic()
        back = self.probe()
        return self.window(kind or f"restart-{mode}", start, up, back, relaxes=True)

    def kill_listener(self, slot: AgentSlot, kind: str = "kill-listener") -> Window:
        start = now()
        with slot.lock, self.pair.connect() as conn:
            pid = fetch_value(conn, q("agent_pid"), (slot.station,))
            if pid is not None:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        t = time.monotonic()
        return self.window(kind, start, t, self.probe([slot.station]), slot.station,
                           agent_pid=pid)  # fmt: skip

    def kill_steps(self) -> Window:
        start = now()
        with self.pair.connect() as conn:
            rows = fetch_rows(conn, q("slow_steps"))
            victims = self.rng.sample(rows, min(3, len(rows)))
            for r in victims:
                conn.execute("SELECT pg_terminate_backend(%s)", (r["pid"],))
        t = time.monotonic()
        return self.window("kill-steps", start, t, self.probe(), steps=len(victims))

    def sigkill(self, slot: AgentSlot, kind: str = "sigkill") -> Window:
        start = now()
        with slot.lock:
            with self.pair.ready() as conn:
                pid = fetch_value(conn, q("agent_pid"), (slot.station,))
            killed = time.monotonic()
            slot.kill()
            cleanup = self._cleaned_up(pid, killed)
            pause = self.rng.uniform(2.0, 12.0)
            self.stop.wait(max(0.0, killed + pause - time.monotonic()))
            slot.start()
        t = time.monotonic()
        return self.window(kind, start, t, self.probe([slot.station]), slot.station, True,
                           cleanup_s=cleanup, pause_s=round(pause, 3))  # fmt: skip

    def _cleaned_up(self, pid: int | None, since: float) -> float | None:
        """Seconds until the other agents removed the dead agent's row and claims."""
        if pid is None:
            return None
        while time.monotonic() - since < 60:
            try:
                with self.pair.connect() as conn:
                    left = fetch_value(conn, q("dead_agent_left"), {"p": pid})
                if not left:
                    took = time.monotonic() - since
                    if took > CLEANUP_BOUND:
                        self.record.problems.append({"kind": "slow_cleanup", "took_s": took})
                    return round(took, 3)
            except psycopg.Error:
                pass
            time.sleep(0.05)
        self.record.problems.append({"kind": "dead_agent_not_cleaned_up", "pid": pid})
        return None

    def sigterm(self) -> Window:
        slot = self.slot()
        start = now()
        with slot.lock:
            took = slot.terminate()
            if took > EXIT_BOUND:
                self.record.problems.append({"kind": "slow_exit", "took_s": took})
            if slot.life.code != 0:
                self.record.problems.append({"kind": "bad_exit", "code": slot.life.code,
                                             "log": str(slot.life.log)})  # fmt: skip
            self.stop.wait(self.rng.uniform(1.0, 5.0))
            slot.start()
        t = time.monotonic()
        return self.window("sigterm", start, t, self.probe([slot.station]), slot.station, True,
                           exit_s=round(took, 3))  # fmt: skip

    def sighup(self) -> Window:
        slot = self.slot(any_agent=True)
        start = now()
        with slot.lock:
            before = slot.life.log.read_text(errors="replace").count("reload requested")
            config = slot.reload()
            t = time.monotonic()
            while slot.life.log.read_text(errors="replace").count("reload requested") == before:
                if time.monotonic() - t > 5:
                    self.record.problems.append(
                        {"kind": "reload_not_seen", "station": slot.station}
                    )
                    break
                time.sleep(0.02)
        return self.window("sighup", start, t, self.probe([slot.station]), slot.station,
                           config=config)  # fmt: skip

    def stall(self) -> Window:
        """The last station's agent reaches the server through the proxy."""
        assert self.pair.proxy is not None
        slot = list(self.fleet.slots.values())[-1]
        start = now()
        stalled = self.rng.uniform(4.0, 20.0)
        with slot.lock:
            self.pair.proxy.stall()
            self.stop.wait(stalled)
            self.pair.proxy.resume()
        t = time.monotonic()
        return self.window("stall", start, t, self.probe([slot.station]), slot.station, True,
                           stalled_s=round(stalled, 3))  # fmt: skip

    def failover(self) -> Window:
        start = now()
        with self.pair.lock:
            parts = self.pair.failover()
            back = self.probe()
            rebuilt = self.pair.rebuild_standby()
        return self.window("failover", start, parts["promoted_at"], back, relaxes=True,
                           rebuild_s=round(rebuilt, 3), stop_s=round(parts["stop_s"], 3),
                           promote_s=round(parts["promote_s"], 3))  # fmt: skip

    def burst(self, during: Callable[[], Window] | None = None, kind: str = "burst") -> Window:
        """Thousands of schedule changes: one statement for all schedules, then small ones
        (notifications of up to 250 jobs carry their values, larger ones only ids)."""
        start = now()
        changes = 0
        other: list[Window] = []
        helper = threading.Thread(target=lambda: other.append(during())) if during else None
        deadlocks = 0
        with self.pair.connect() as conn:
            ids = [r["jscid"] for r in fetch_rows(conn, q("burst_schedules"))]
            parts = [(f"burst {n}", ids) for n in range(3)]
            parts += [("burst small", ids[c : c + 50]) for c in range(0, len(ids), 50)]
            for n, params in enumerate(parts):
                if n == 1 and helper is not None:
                    helper.start()
                try:
                    changes += conn.execute(q("burst"), params).rowcount
                except psycopg.errors.DeadlockDetected:
                    # the server picked this statement as a deadlock's victim (the agents'
                    # releases lock rows too, in their own order): a client's outcome, as for
                    # any two writers; the agents go on
                    deadlocks += 1
        if helper is not None:
            helper.join()
            self.record.windows.extend(other)
        t = time.monotonic()
        return self.window(kind, start, t, self.probe(), changes=changes, deadlocks=deadlocks)

    def restart_and_sigkill(self) -> Window:
        """An agent killed while the others reconnect after a restart."""
        victim = self.slot()
        killer = threading.Timer(0.3, lambda: self.record.windows.append(self.sigkill(victim)))
        killer.start()
        window = self.restart("fast", "restart+sigkill")
        killer.join()
        return window

    def burst_and_kill_listener(self) -> Window:
        slot = self.slot(any_agent=True)
        return self.burst(lambda: self.kill_listener(slot), "burst+kill-listener")
