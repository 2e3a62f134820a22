"""pgAdmin's pgAgent endpoints as its React dialogs call them, and the bodies they send.

The bodies are the dialogs' defaults merged with what a user fills in: ``PgaJobSchema``
(``pgagent/static/js/pga_job.ui.js``), ``PgaJobStepSchema`` (``steps/.../pga_jobstep.ui.js``)
and ``PgaJobScheduleSchema`` (``schedules/.../pga_schedule.ui.js``). A create dialog sends
the whole form; an edit dialog sends only the changed keys plus the id attribute, and grid
collections as ``{added, changed, deleted}`` (SchemaView's ``changes()``). Routes are
``/browser/<node>/<operation>/<server group>/<server>/<job>[/<step or schedule>]``
(``JobView``, ``JobStepView``, ``JobScheduleView``: their ``operations``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from notifyagent.pgadmin import PgAdminClient
from tests.compat.pgagent import pgagent_dsn
from tests.pg import Database, wait_for

Rows = list[dict[str, Any]]


def flags(count: int, selected: Iterable[int], first: int = 0) -> list[bool]:
    """A Repeat-tab array: ``count`` booleans, True where the value (``first``-based) is
    selected; all False means "any"."""
    chosen = set(selected)
    return [i + first in chosen for i in range(count)]


def sql_step(name: str, code: str, dbname: str, onerror: str = "f", connstr: str = "") -> Any:
    """A SQL step as the Steps grid adds it: local database (``jstconntype`` true) or, with
    ``connstr``, a Remote connection string."""
    return {
        "jstid": None, "jstjobid": None, "jstname": name, "jstdesc": "", "jstenabled": True,
        "jstkind": True, "jstconntype": not connstr, "jstcode": code,
        "jstconnstr": connstr or None, "jstdbname": dbname, "jstonerror": onerror,
        "jstnextrun": "",
    }  # fmt: skip


def batch_step(name: str, code: str, dbname: str, onerror: str = "f") -> Any:
    """A batch step: ``jstkind`` false; the dialog keeps its default database, which the
    template replaces by ''."""
    return {**sql_step(name, code, dbname, onerror), "jstkind": False}


def exception(day: date | None, at: time | None) -> Any:
    """An Exceptions row: date ``yyyy-MM-dd`` and/or time ``HH:mm``, None for <any>."""
    return {
        "jexdate": day.isoformat() if day else None,
        "jextime": at.strftime("%H:%M") if at else None,
    }


def timestamp(value: datetime) -> str:
    """The dialog's date-time format, ``yyyy-MM-dd HH:mm:ss xxx`` in the browser's offset."""
    text = value.strftime("%Y-%m-%d %H:%M:%S %z")
    return f"{text[:-2]}:{text[-2:]}"


def schedule(
    name: str,
    start: datetime,
    *,
    minutes: Iterable[int] = (),
    hours: Iterable[int] = (),
    weekdays: Iterable[int] = (),
    monthdays: Iterable[int] = (),
    months: Iterable[int] = (),
    exceptions: Sequence[Any] = (),
    enabled: bool = True,
) -> Any:
    """A schedule as the Schedules grid adds it. Weekdays 0 = Sunday; month day 32 = Last
    day; months 1 = January."""
    return {
        "jscid": None, "jscjobid": None, "jscname": name, "jscdesc": "",
        "jscenabled": enabled, "jscstart": timestamp(start), "jscend": None,
        "jscweekdays": flags(7, weekdays), "jscmonthdays": flags(32, monthdays, 1),
        "jscmonths": flags(12, months, 1), "jschours": flags(24, hours),
        "jscminutes": flags(60, minutes), "jscexceptions": list(exceptions),
    }  # fmt: skip


def job(
    name: str,
    steps: Sequence[Any] = (),
    schedules: Sequence[Any] = (),
    *,
    enabled: bool = True,
    hostagent: str = "",
) -> Any:
    """The Create pgAgent Job dialog's body (job class 1, "Routine Maintenance")."""
    return {
        "jobname": name, "jobenabled": enabled, "jobhostagent": hostagent, "jobjclid": 1,
        "jobdesc": "", "jsteps": list(steps), "jschedules": list(schedules),
    }  # fmt: skip


@dataclass
class PgAgentNode:
    """One server's "pgAgent Jobs" node in pgAdmin, driven through ``api``."""

    api: PgAdminClient
    sid: int

    def url(self, node: str, operation: str, *ids: int) -> str:
        """A route; a collection's (no object id) ends with '/', as pgAdmin builds it."""
        tail = "/".join(str(i) for i in ids)
        return f"/browser/{node}/{operation}/1/{self.sid}/{tail}"

    # -- jobs ---------------------------------------------------------------------------
    def create_job(self, body: Any) -> Any:
        """Save of the Create dialog: the new tree node (``_id`` is the job id)."""
        return self.api.call("POST", self.url("pga_job", "obj"), body)["node"]

    def jobs(self) -> Rows:
        """The pgAgent Jobs collection's grid (Properties of the collection node)."""
        rows: Rows = self.api.call("GET", self.url("pga_job", "obj"))
        return rows

    def job(self, jid: int) -> dict[str, Any]:
        """The job's Properties panel (with its steps and schedules, as the edit dialog
        loads them)."""
        props: dict[str, Any] = self.api.call("GET", self.url("pga_job", "obj", jid))
        return props

    def job_nodes(self) -> Rows:
        """The tree's children of "pgAgent Jobs"."""
        rows: Rows = self.api.call("GET", self.url("pga_job", "nodes"))["data"]
        return rows

    def update_job(self, jid: int, changes: Any) -> Any:
        """Save of the job's edit dialog: only the changed keys and ``jobid``."""
        body = {**changes, "jobid": jid}
        return self.api.call("PUT", self.url("pga_job", "obj", jid), body)["node"]

    def run_now(self, jid: int) -> Any:
        """The job's context menu, Run now: pgAdmin's answer (``info`` is its toast)."""
        return self.api.call("PUT", self.url("pga_job", "run_now", jid))

    def delete_job(self, jid: int) -> Any:
        return self.api.call("DELETE", self.url("pga_job", "obj", jid))

    def job_stats(self, jid: int) -> Rows:
        """The job's Statistics tab: one row per run, newest first."""
        rows: Rows = self.api.call("GET", self.url("pga_job", "stats", jid))["data"]["rows"]
        return rows

    def job_sql(self, jid: int) -> str:
        """The job's SQL tab (pgAdmin's reverse-engineered CREATE script)."""
        text: str = self.api.call("GET", self.url("pga_job", "sql", jid))
        return text

    # -- steps and schedules (tree nodes under the job) -----------------------------------
    def create_step(self, jid: int, body: Any) -> Any:
        return self.api.call("POST", self.url("pga_jobstep", "obj", jid) + "/", body)["node"]

    def step(self, jid: int, jstid: int) -> dict[str, Any]:
        props: dict[str, Any] = self.api.call("GET", self.url("pga_jobstep", "obj", jid, jstid))
        return props

    def update_step(self, jid: int, jstid: int, changes: Any) -> Any:
        body = {**changes, "jstid": jstid}
        return self.api.call("PUT", self.url("pga_jobstep", "obj", jid, jstid), body)["node"]

    def delete_step(self, jid: int, jstid: int) -> Any:
        return self.api.call("DELETE", self.url("pga_jobstep", "obj", jid, jstid))

    def step_stats(self, jid: int, jstid: int) -> Rows:
        """The step's Statistics tab: one row per run of the step, newest first."""
        url = self.url("pga_jobstep", "stats", jid, jstid)
        rows: Rows = self.api.call("GET", url)["data"]["rows"]
        return rows

    def create_schedule(self, jid: int, body: Any) -> Any:
        return self.api.call("POST", self.url("pga_schedule", "obj", jid) + "/", body)["node"]

    def schedule(self, jid: int, jscid: int) -> dict[str, Any]:
        url = self.url("pga_schedule", "obj", jid, jscid)
        props: dict[str, Any] = self.api.call("GET", url)
        return props

    def update_schedule(self, jid: int, jscid: int, changes: Any) -> Any:
        body = {**changes, "jscid": jscid}
        return self.api.call("PUT", self.url("pga_schedule", "obj", jid, jscid), body)["node"]

    def delete_schedule(self, jid: int, jscid: int) -> Any:
        return self.api.call("DELETE", self.url("pga_schedule", "obj", jid, jscid))

    # -- waiting on what pgAdmin shows ----------------------------------------------------
    def wait_runs(self, jid: int, runs: int = 1, timeout: float = 30) -> Rows:
        """The job's Statistics rows once it shows ``runs`` finished runs and the job is no
        longer running (Last result is not ``r``)."""

        def finished() -> Rows | None:
            rows = self.job_stats(jid)
            done = [r for r in rows if r["Status"] != "r"]
            idle = self.job(jid)["jlgstatus"] != "r"
            return rows if len(done) >= runs and idle else None

        return wait_for(finished, timeout, 0.2, f"{runs} finished run(s) of job {jid} in pgAdmin")


@dataclass
class Stage(PgAgentNode):
    """One agent kind's database: as pgAdmin shows it (``PgAgentNode``) and as it is."""

    kind: str
    db: Database
    station: str

    def now(self) -> datetime:
        """The database server's clock."""
        now: datetime = self.db.value("SELECT now()")
        return now

    def zone(self) -> ZoneInfo:
        """The zone pgAdmin's sessions, the agents and the extension read schedules in."""
        return ZoneInfo(self.db.value("SHOW TimeZone"))

    def remote(self, tag: str) -> str:
        """A Remote connection string to the stage's database, for steps that fail: pgAgent
        4.2.2 pools connections by string and shows a pooled connection's last error as the
        output of later successful steps on it; a string of their own keeps that away from
        the other steps."""
        return f"{pgagent_dsn(self.db)} application_name={tag}"
