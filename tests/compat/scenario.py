"""The differential scenario: the jobs, how they are created, and how a run is driven.

The same jobs are created, in the same order, in two fresh databases cloned from the same
template, so job and step ids are equal too. Every job is started with pgAdmin's Run now
(``jobnextrun = now()``); see :func:`drive` for the order.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from notifyagent import conninfo
from tests.agent import StepSpec, batch_step, make_job, run_now, sql_step
from tests.pg import Database, wait_for

#: A station no agent in the test has: a job pinned to it must never run.
OTHER_STATION = "compat-some-other-host"
#: A database that does not exist on the test server.
MISSING_DATABASE = "compat_no_such_database"
#: The table only the "other" database has (so a step proves where it ran); two rows.
OTHER_TABLE = "public.only_in_other"
#: What job "batch_output_not_utf8" must store, step by step: its first step prints the bytes
#: \377 and \376, which are not UTF-8; each becomes one U+FFFD, and the next step runs.
NOT_UTF8_OUTPUTS = {"a_bad_bytes": "ok \ufffd\ufffd end\n", "b_after": "after\n"}


def station() -> str:
    """pgAgent's station is ``gethostname()``; notifyagent is given the same with --station."""
    return socket.gethostname()


@dataclass(frozen=True)
class ScenarioJob:
    name: str
    steps: Sequence[StepSpec] = ()
    enabled: bool = True
    #: "" = any agent; "{station}" = this host; anything else = another host
    hostagent: str = ""
    #: expected job status, None = must not run
    expect: str | None = "s"
    #: expected step statuses in the order they ran (None: not checked)
    expect_steps: Sequence[str] | None = field(default=None)
    #: (job status, step statuses) under pgAgent where that is a bug notifyagent fixes
    pgagent_expect: tuple[str, Sequence[str]] | None = None
    #: the exact jsloutput of each step, in the order they ran (None: not checked)
    expect_outputs: Sequence[str] | None = None


def jobs(target: Database, other_db: Database) -> list[ScenarioJob]:
    """The scenario for one target database (SQL steps default to it)."""
    other_conn = conninfo.with_params(other_db.dsn, application_name="connstr_step")
    return [
        ScenarioJob(
            "multi_sql_ordered_by_name",
            [
                # inserted c, a, d, b, e: the ids disagree with the names, which set the order
                sql_step("c_third_select", "SELECT g FROM generate_series(1, 4) g"),
                sql_step("a_first_insert", "INSERT INTO public.tick(label) VALUES ('a')"),
                sql_step("d_disabled", "SELECT 1/0", enabled=False),
                sql_step("b_second_update", "UPDATE public.tick SET label = 'b' WHERE label = 'a'"),
                sql_step("e_notice_only", "DO $$BEGIN RAISE NOTICE 'just a notice'; END$$"),
            ],
            expect_steps=["s", "s", "s", "s"],
        ),
        ScenarioJob(
            "fail_middle_onerror_f",
            [
                sql_step("a_ok", "SELECT 1"),
                sql_step("b_divide_by_zero", "SELECT 1/0", onerror="f"),
                sql_step("c_never_runs", "SELECT 1"),
            ],
            expect="f",
            expect_steps=["s", "f"],
        ),
        ScenarioJob(
            "fail_middle_onerror_s",
            [
                sql_step("a_ok", "SELECT 1"),
                sql_step("b_missing_table", "SELECT * FROM no_such_table", onerror="s"),
                sql_step("c_after", "SELECT 1, 2"),
            ],
            expect_steps=["s", "s", "s"],
        ),
        ScenarioJob(
            "fail_middle_onerror_i",
            [
                sql_step("a_ok", "SELECT 1"),
                sql_step("b_syntax_error", "SELEKT 1", onerror="i"),
                sql_step("c_after", "SELECT g FROM generate_series(1, 2) g"),
            ],
            expect_steps=["s", "i", "s"],
        ),
        ScenarioJob("disabled_job", [sql_step("a", "SELECT 1")], enabled=False, expect=None),
        ScenarioJob("no_steps", [], expect_steps=[]),
        ScenarioJob(
            "all_steps_disabled",
            [sql_step("a", "SELECT 1", enabled=False), batch_step("b", "exit 1", enabled=False)],
            expect_steps=[],
        ),
        ScenarioJob(
            "sql_other_database",
            [sql_step("a", f"SELECT * FROM {OTHER_TABLE}", dbname=other_db.name)],
            expect_steps=["s"],
        ),
        ScenarioJob(
            "sql_own_connstr",
            [
                sql_step(
                    "a",
                    f"SELECT * FROM {OTHER_TABLE} "
                    "WHERE current_setting('application_name') = 'connstr_step'",
                    connstr=other_conn,
                )
            ],
            expect_steps=["s"],
        ),
        ScenarioJob(
            "sql_missing_database",
            [
                sql_step("a_no_such_db", "SELECT 1", dbname=MISSING_DATABASE, onerror="i"),
                sql_step("b_after", "SELECT 1"),
            ],
            expect_steps=["i", "s"],
        ),
        ScenarioJob(
            "sql_several_statements",
            [
                sql_step(
                    "a",
                    "INSERT INTO public.tick(label) VALUES ('m1'); "
                    "INSERT INTO public.tick(label) SELECT 'm3' FROM generate_series(1, 3)",
                )
            ],
            expect_steps=["s"],
        ),
        ScenarioJob(
            "sql_select_rows",
            [sql_step("a", "SELECT g, g * 2 FROM generate_series(1, 7) g")],
            expect_steps=["s"],
        ),
        ScenarioJob(
            "sql_empty_code",
            [sql_step("a_empty", "", onerror="s"), sql_step("b_after", "SELECT 1")],
            expect_steps=["s", "s"],
        ),
        ScenarioJob(
            "batch_stdout",
            [
                batch_step(
                    "a",
                    "echo hello\r\nprintf 'back\\\\slash and caf\\303\\251\\n'\r\n"
                    'echo "script=$0"\r\nexit 0\r\n',
                )
            ],
            expect_steps=["s"],
        ),
        ScenarioJob(
            "batch_stderr",
            [batch_step("a", "echo to-stdout\necho to-stderr >&2\necho more-stderr >&2\n")],
            expect_steps=["s"],
        ),
        ScenarioJob(
            "batch_exit_3",
            [
                batch_step("a_exit3", "echo before\nexit 3\n", onerror="i"),
                batch_step("b_silent_fail", "exit 1\n", onerror="s"),
                batch_step("c_after", "echo after\n"),
            ],
            expect_steps=["i", "s", "s"],
        ),
        ScenarioJob(
            "batch_killed_by_signal",
            [
                # the script's shell dies of SIGKILL; /bin/sh -c <script> reports exit 137
                batch_step(
                    "a_script_killed", "echo dying\nkill -9 $$\necho not reached\n", onerror="i"
                ),
                # the /bin/sh -c <script> process itself is killed: result -1
                batch_step(
                    "b_shell_killed", "echo before\nkill -9 $PPID\necho orphan\n", onerror="s"
                ),
            ],
            expect_steps=["i", "s"],
        ),
        ScenarioJob(
            "batch_shebang_python",
            [
                batch_step(
                    "a",
                    "#!/usr/bin/env python3\nimport sys\nprint('python', sys.version_info[0])\n"
                    "sys.exit(0)\n",
                )
            ],
            expect_steps=["s"],
        ),
        ScenarioJob(
            "batch_output_not_utf8",
            [
                batch_step("a_bad_bytes", "printf 'ok \\377\\376 end\\n'\n"),
                batch_step("b_after", "echo after\n"),
            ],
            expect_steps=["s", "s"],
            expect_outputs=list(NOT_UTF8_OUTPUTS.values()),
            # pgAgent's log UPDATE fails on the invalid bytes: step left 'r', job 'f'
            pgagent_expect=("f", ["r"]),
        ),
        ScenarioJob(
            "batch_fail_onerror_f",
            [batch_step("a", "echo oops >&2\nexit 2\n"), batch_step("b_never_runs", "true")],
            expect="f",
            expect_steps=["f"],
        ),
        ScenarioJob(
            "mixed_sql_and_batch",
            [
                batch_step("b_batch", "echo from-batch\n"),
                sql_step("a_sql", "SELECT 1"),
                sql_step("c_sql", "INSERT INTO public.tick(label) VALUES ('mixed')"),
            ],
            expect_steps=["s", "s", "s"],
        ),
        ScenarioJob(
            "pinned_to_this_station",
            [sql_step("a", "SELECT 1")],
            hostagent="{station}",
            expect_steps=["s"],
        ),
        ScenarioJob(
            "pinned_to_other_station",
            [sql_step("a", "SELECT 1")],
            hostagent=OTHER_STATION,
            expect=None,
        ),
    ]


def create(db: Database, scenario: Sequence[ScenarioJob]) -> dict[str, int]:
    """Insert the jobs and their steps; return job ids by name."""
    return {
        j.name: make_job(
            db, j.name, j.steps, enabled=j.enabled, hostagent=j.hostagent.format(station=station())
        )
        for j in scenario
    }


def prepare_other(db: Database) -> None:
    db.execute(f"CREATE TABLE {OTHER_TABLE} (x int); INSERT INTO {OTHER_TABLE} VALUES (1), (2)")


def finished(db: Database, jobid: int) -> bool:
    """A run with a duration (not a claim-race 'i' row) is logged and the job is released."""
    return bool(
        db.value(
            "SELECT EXISTS (SELECT 1 FROM pgagent.pga_joblog WHERE jlgjobid = %(j)s "
            "AND jlgstatus <> 'r' AND jlgduration IS NOT NULL) "
            "AND (SELECT jobagentid IS NULL FROM pgagent.pga_job WHERE jobid = %(j)s)",
            {"j": jobid},
        )
    )


def runs_batch(job: ScenarioJob) -> bool:
    return any(s.kind == "b" and s.enabled for s in job.steps)


def drive(
    db: Database,
    scenario: Sequence[ScenarioJob],
    ids: dict[str, int],
    *,
    timeout: float = 20,
    describe: str = "",
) -> None:
    """Run now every job and wait until each one that must run finished and was released.

    First the jobs that must not run, so they stay due (or, for a disabled job, have their Run
    now cancelled by the trigger) through many poll periods of pgAgent and many wake-ups of
    notifyagent. Then every job without batch steps at once (one UPDATE, as several pgAdmin
    users might), then the jobs with batch steps one at a time: pgAgent redirects the whole
    process's stderr for each batch step (§3.6), so concurrent batch steps would make its
    reference output racy.
    """

    def wait(jobid: int, name: str) -> None:
        wait_for(
            partial(finished, db, jobid),
            timeout,
            what=f"job {name} ({jobid}) to finish and be released {describe}",
        )

    run_now(db, *[ids[j.name] for j in scenario if j.expect is None])
    together = [j for j in scenario if j.expect is not None and not runs_batch(j)]
    run_now(db, *[ids[j.name] for j in together])
    for j in together:
        wait(ids[j.name], j.name)
    for j in scenario:
        if j.expect is not None and runs_batch(j):
            run_now(db, ids[j.name])
            wait(ids[j.name], j.name)
    wait_for(
        lambda: db.value("SELECT count(*) FROM pgagent.pga_job WHERE jobagentid IS NOT NULL") == 0,
        timeout,
        what=f"every job released {describe}",
    )
