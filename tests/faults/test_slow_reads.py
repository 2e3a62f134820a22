"""Slow reads: the agent's estimate of the server's clock lags, and no tick runs twice (found by
the chaos soak: two `every` jobs ran twice for one tick under load).

The agent estimates the server's clock from the ``server_now`` its reads return, so an answer
that arrives late makes the estimate lag by that much. The agent then claims a job when its
estimate reaches the due time (a little late, never early); a short run ends before the
estimate passes the due time, and the release used to ask the schedule for the next run after
"now": that is the due time it just ran for, so the job ran again at once. The release asks for
the next run after the due time it ran (Scheduler.next_run).
"""

from __future__ import annotations

from collections.abc import Callable
from statistics import median

import pytest

from notifyagent.cluster import TCP_PASSWORD
from tests.agent import make_job, sql_step
from tests.faults.conftest import AgentStarter
from tests.pg import Database, Server, wait_for
from tests.proxy import StallProxy

pytestmark = pytest.mark.slow

#: the job's interval (policy ``every``), seconds
EVERY = 2
#: how late the agent's reads of the jobs' states reach it (its clock estimate lags that much)
READ_LAG = 0.3
TICKS = 6


def test_a_lagging_clock_estimate_runs_each_tick_once(
    pg_server: Server,
    db: Database,
    stall_proxy: Callable[[int], StallProxy],
    agents: AgentStarter,
) -> None:
    if pg_server.cluster is None:
        pytest.skip("needs the test cluster's TCP port")
    proxy = stall_proxy(pg_server.cluster.port)
    proxy.slow_answers = (b"server_now", READ_LAG)  # a column of the job_states read only
    dsn = f"host=127.0.0.1 port={proxy.port} user=postgres dbname={db.name} password={TCP_PASSWORD}"
    agents(dsn)
    # the step records the due time it runs for (jobnextrun does not change while a job runs)
    job = make_job(db, "tick", [sql_step("due", (
        "INSERT INTO public.tick(label) SELECT extract(epoch FROM jobnextrun)::text "
        "FROM pgagent.pga_job WHERE jobname = 'tick'"))])  # fmt: skip
    db.execute(
        "INSERT INTO notifyagent.job_policy (jobid, every) VALUES (%s, make_interval(secs => %s))",
        (job, EVERY),
    )
    wait_for(
        lambda: db.value("SELECT count(*) >= %s FROM public.tick", (TICKS,)),
        TICKS * EVERY + 15,
        what=f"{TICKS} runs of the job",
    )
    runs = db.rows("SELECT label::float8 AS due, extract(epoch FROM ran_at)::float8 AS ran "
                   "FROM public.tick ORDER BY id")  # fmt: skip
    due = [r["due"] for r in runs]
    # the premise: the estimate lagged, so the runs started late (claimed when it reached them)
    assert median(r["ran"] - r["due"] for r in runs) > READ_LAG / 2, runs
    assert len(due) == len(set(due)), f"a due time ran more than once: {due}"
