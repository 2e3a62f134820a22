"""pgAdmin's pgAgent actions through its own endpoints, each run against notifyagent and
against the real pgAgent (``stage``): every test asserts what pgAdmin answers or shows.

Absence of a run is never waited for with a sleep: a job that must not run is checked after
the agent demonstrably handled a later due job, or after the cause is visible (Next run
emptied by the extension's trigger).
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.pg import wait_for
from tests.pgadmin import pga
from tests.pgadmin.differences import DIFFERENCES
from tests.pgadmin.pga import Stage
from tests.pgadmin.timeline import pg_time

RUN_NOW_INFO = "Updated the next runtime to now."


def next_at(now: datetime, zone: ZoneInfo, hour: int, minute: int) -> datetime:
    """The first wall-clock ``hour:minute`` after ``now`` in ``zone``."""
    local = now.astimezone(zone)
    at = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return at if at > local else at + timedelta(days=1)


def tick_step(stage: Stage, label: str, name: str = "tick") -> Any:
    return pga.sql_step(name, f"INSERT INTO public.tick(label) VALUES ('{label}')", stage.db.name)


def step_ids(stage: Stage, jid: int) -> dict[str, int]:
    return {s["jstname"]: s["jstid"] for s in stage.job(jid)["jsteps"]}


def test_the_server_shows_a_pgagent_jobs_node(stage: Stage) -> None:
    """pgAdmin found pgAgent's schema in the maintenance database: the server's children
    include "pgAgent Jobs", and the Create dialog's job classes load."""
    children = stage.api.call("GET", f"/browser/server/children/1/{stage.sid}")["data"]
    assert ("pgAgent Jobs", "coll-pga_job") in [(c["label"], c["_type"]) for c in children]
    classes = stage.api.call("GET", stage.url("pga_job", "classes"))["data"]
    assert {"value": 1, "label": "Routine Maintenance"} in classes


def test_run_now_a_running_job_and_its_statistics(stage: Stage) -> None:
    """Run now: pgAdmin's toast; while the job runs, Properties show Last result "r" and the
    agent running it (its station, from pga_jobagent) and Statistics a run without end; then
    every step's status, result and output, and the job's failure, in the grid too."""
    remote = stage.remote("run_now")
    steps = [
        pga.sql_step("a_sleep", "SELECT pg_sleep(3)", stage.db.name),
        pga.sql_step("b_fails", "SELECT * FROM no_such_table", stage.db.name, "s", remote),
        pga.sql_step("c_after", "SELECT 1", stage.db.name, "f", remote),
        pga.sql_step("d_stops", "SELECT 1/0", stage.db.name, "f", remote),
        pga.sql_step("e_never", "SELECT 1", stage.db.name),
    ]
    jid = stage.create_job(pga.job("run_now", steps))["_id"]
    assert stage.run_now(jid)["info"] == RUN_NOW_INFO

    running = wait_for(lambda: (p := stage.job(jid))["jlgstatus"] == "r" and p, 20, 0.1)
    assert running["jagagent"] == stage.station
    pids = [r["jagpid"] for r in stage.db.rows("SELECT jagpid FROM pgagent.pga_jobagent")]
    assert running["jobagentid"] in pids
    (row,) = stage.job_stats(jid)
    assert (row["Status"], row["Duration"], row["End time"]) == ("r", None, None)

    (row,) = stage.wait_runs(jid)
    assert row["Status"] == "f"
    ids = step_ids(stage, jid)
    shown = {}
    for name, jstid in ids.items():
        rows = stage.step_stats(jid, jstid)
        shown[name] = [(r["Status"], r["Result"], r["Output"].split("\n")[0]) for r in rows]
    stale = "" if stage.kind == "notifyagent" else 'ERROR:  relation "no_such_table" does not exist'
    assert shown == {
        "a_sleep": [("s", 1, "")],
        "b_fails": [("s", -1, 'ERROR:  relation "no_such_table" does not exist')],
        "c_after": [("s", 1, stale)],  # pgAgent 4.2.2: DIFFERENCES["stale-error-text"]
        "d_stops": [("f", -1, "ERROR:  division by zero")],
        "e_never": [],
    }
    assert "stale-error-text" in DIFFERENCES
    props = stage.job(jid)
    assert (props["jlgstatus"], props["jagagent"], props["jobagentid"]) == ("f", None, None)
    (listed,) = [j for j in stage.jobs() if j["jobid"] == jid]
    assert (listed["jlgstatus"], listed["joblastrun"]) == ("f", props["joblastrun"])


def test_delete_a_running_job(stage: Stage) -> None:
    """Delete while it runs: pgAdmin answers success and the job leaves the tree; nothing
    is stuck: no run stays "r", the agent stays registered and the next job runs."""
    jid = stage.create_job(
        pga.job("deleted_while_running", [pga.sql_step("s", "SELECT pg_sleep(3)", stage.db.name)])
    )["_id"]
    stage.run_now(jid)
    wait_for(lambda: stage.job(jid)["jlgstatus"] == "r", 20, 0.1, "the run in Properties")
    assert stage.delete_job(jid)["success"] == 1
    assert jid not in [n["_id"] for n in stage.job_nodes()]
    status, answer = stage.api.request("GET", stage.url("pga_job", "obj", jid))
    assert (status, answer["errormsg"]) == (410, "Could not find the pgAgent job on the server.")

    def settled() -> bool:
        return not stage.db.value(
            "SELECT count(*) FROM pgagent.pga_joblog WHERE jlgstatus = 'r'"
            " AND jlgjobid NOT IN (SELECT jobid FROM pgagent.pga_job WHERE jobname LIKE 'tl_%')"
        )

    wait_for(settled, 20, 0.1, "no run of the deleted job left running")
    after = stage.create_job(pga.job("after_delete", [tick_step(stage, "after_delete")]))["_id"]
    stage.run_now(after)
    assert [r["Status"] for r in stage.wait_runs(after)] == ["s"]
    assert stage.db.value(
        "SELECT jagstation FROM pgagent.pga_jobagent ORDER BY jagpid LIMIT 1"
    ) == (stage.station)


def test_disable_then_enable(stage: Stage) -> None:
    """The Enabled? switch. Disabled: the node's icon, an empty Next run, and Run now is
    cancelled by the extension's trigger although pgAdmin reports success. Enabled: Next run
    is back, and Run now runs the job once."""
    start = stage.now() - timedelta(days=1)
    daily = pga.schedule("daily", start, minutes=[17], hours=[3])
    jid = stage.create_job(pga.job("toggled", [tick_step(stage, "toggled")], [daily]))["_id"]
    expected = next_at(stage.now(), stage.zone(), 3, 17)
    assert pg_time(stage.job(jid)["jobnextrun"]) == expected

    assert stage.update_job(jid, {"jobenabled": False})["icon"] == "icon-pga_job-disabled"
    assert stage.job(jid)["jobnextrun"] is None
    assert stage.run_now(jid)["info"] == RUN_NOW_INFO
    assert stage.job(jid)["jobnextrun"] is None  # cancelled: nothing is due

    assert stage.update_job(jid, {"jobenabled": True})["icon"] == "icon-pga_job"
    assert pg_time(stage.job(jid)["jobnextrun"]) == expected
    stage.run_now(jid)
    assert [r["Status"] for r in stage.wait_runs(jid)] == ["s"]  # one run: the enabled one


def test_change_the_host_agent(stage: Stage) -> None:
    """Host agent: a job pinned to another host is not run by this host's agent on Run now
    (a job made due after it runs and ends first); set to this host, it runs."""
    pinned = stage.create_job(
        pga.job("pinned", [tick_step(stage, "pinned")], hostagent="some-other-host")
    )["_id"]
    stage.run_now(pinned)
    control = stage.create_job(pga.job("control", [tick_step(stage, "control")]))["_id"]
    stage.run_now(control)
    stage.wait_runs(control)
    assert stage.job_stats(pinned) == []
    assert stage.job(pinned)["jlgstatus"] is None

    stage.update_job(pinned, {"jobhostagent": stage.station})
    assert stage.job(pinned)["jobhostagent"] == stage.station
    assert [r["Status"] for r in stage.wait_runs(pinned)] == ["s"]


def test_steps_and_schedules_under_the_job_node(stage: Stage) -> None:
    """Create, change and delete steps and schedules under a job node, the job dialog's
    Steps grid, exceptions added and removed (Next run follows), and the SQL tab."""
    db = stage.db.name
    jid = stage.create_job(pga.job("tree"))["_id"]
    dollar = "DO $$BEGIN INSERT INTO public.tick(label) VALUES ('dollar'); END$$"
    node = stage.create_step(jid, pga.sql_step("b_dollar", dollar, db))  # the Create Job
    assert node["label"] == "b_dollar"  # dialog's DO block cannot hold $$ (pgadmin-client §7)
    changed = stage.update_step(jid, node["_id"], {"jstonerror": "i", "jstdesc": "changed"})
    assert changed["description"] == "changed"
    props = stage.step(jid, node["_id"])
    assert (props["jstcode"], props["jstonerror"], props["jstkind"]) == (dollar, "i", True)
    stage.update_job(jid, {"jsteps": {"added": [pga.sql_step("a_first", "SELECT 1", db)]}})
    assert list(step_ids(stage, jid)) == ["a_first", "b_dollar"]

    first = next_at(stage.now(), stage.zone(), 4, 30)
    exceptions = [pga.exception(first.date(), first.time()), pga.exception(first.date() +
                  timedelta(days=1), None)]  # fmt: skip
    start = stage.now() - timedelta(days=1)
    sched = stage.create_schedule(
        jid, pga.schedule("daily", start, minutes=[30], hours=[4], exceptions=exceptions)
    )
    shown = stage.schedule(jid, sched["_id"])["jscexceptions"]
    assert [(e["jexdate"], e["jextime"]) for e in shown] == [
        (first.date().isoformat(), "04:30:00"),
        ((first.date() + timedelta(days=1)).isoformat(), None),
    ]
    assert pg_time(stage.job(jid)["jobnextrun"]) == first + timedelta(days=2)
    stage.update_schedule(jid, sched["_id"], {"jscexceptions": {"deleted": [shown[1]]}})
    assert len(stage.schedule(jid, sched["_id"])["jscexceptions"]) == 1
    assert pg_time(stage.job(jid)["jobnextrun"]) == first + timedelta(days=1)
    assert "INSERT INTO pgagent.pga_schedule" in stage.job_sql(jid)
    assert stage.delete_schedule(jid, sched["_id"])["success"] == 1
    assert stage.job(jid)["jobnextrun"] is None

    stage.run_now(jid)
    assert [r["Status"] for r in stage.wait_runs(jid)] == ["s"]
    ids = step_ids(stage, jid)
    assert [r["Status"] for r in stage.step_stats(jid, ids["b_dollar"])] == ["s"]
    assert stage.delete_step(jid, ids["a_first"])["success"] == 1
    assert list(step_ids(stage, jid)) == ["b_dollar"]


def last_day_at(now: datetime, hour: int, minute: int) -> datetime:
    """The next "Last day" of a month at ``hour:minute`` (``now`` in the schedule's zone)."""
    year, month = now.year, now.month
    while True:
        day = calendar.monthrange(year, month)[1]
        at = now.replace(year=year, month=month, day=day, hour=hour, minute=minute, second=0,
                         microsecond=0)  # fmt: skip
        if at > now:
            return at
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def test_next_run_of_last_day_and_31st_schedules(stage: Stage) -> None:
    """Properties show the next run the agent's side computed: "Last day" at 23:45 under
    both; the 31st from a start in a 30-day month under notifyagent, which pgAgent cannot
    even save (DIFFERENCES["impossible-date-save"])."""
    zone = stage.zone()
    now = stage.now().astimezone(zone)
    start = now - timedelta(days=1)
    last = pga.schedule("last_day", start, minutes=[45], hours=[23], monthdays=[32])
    jid = stage.create_job(pga.job("last_day", [tick_step(stage, "last")], [last]))["_id"]
    assert pg_time(stage.job(jid)["jobnextrun"]) == last_day_at(now, 23, 45)

    year, month = now.year, now.month + 1
    while calendar.monthrange(year + (month - 1) // 12, (month - 1) % 12 + 1)[1] != 30:
        month += 1
    april_like = now.replace(year=year + (month - 1) // 12, month=(month - 1) % 12 + 1, day=15,
                             hour=0, minute=0, second=0, microsecond=0)  # fmt: skip
    expected = (april_like.replace(day=1) + timedelta(days=40)).replace(day=31)
    the_31st = pga.schedule("the_31st", april_like, minutes=[0], hours=[0], monthdays=[31])
    body = pga.job("the_31st", [tick_step(stage, "31st")], [the_31st])
    if stage.kind == "pgagent":
        status, answer = stage.api.request("POST", stage.url("pga_job", "obj"), body)
        assert status == 500, answer
        assert "date/time field value out of range" in answer["errormsg"]
        assert "the_31st" not in [n["label"] for n in stage.job_nodes()]
        return
    jid = stage.create_job(body)["_id"]

    def shown() -> bool:
        # 'infinity' until the agent replaced the value the extension could not compute
        text = stage.job(jid)["jobnextrun"]
        return text != "infinity" and pg_time(text) == expected

    wait_for(shown, 10, 0.1, f"Next run {expected}")
