"""One benchmark run's infrastructure: the code snapshot, the throwaway cluster (the test
suite's :class:`tests.pg.Server`), a fresh database per scenario and the agents."""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

from notifyagent.cluster import Cluster
from tests.agent import agent_environ
from tests.bench.agents import Agent, Launch, Processes
from tests.bench.config import AGENT_APP, BENCH_APP, FULL, QUICK, REPO, BenchError, Variant, say
from tests.bench.meta import git_state
from tests.pg import Conn, Database, Server, connect, new_database

TEMPLATE = "bench_template"


def snapshot_env(code: Path) -> dict[str, str]:
    """The environment of agent processes: the snapshot first on the path (they also run
    with it as cwd: `python -m` puts the current directory first on sys.path)."""
    env = agent_environ()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
    return env


class Harness:
    """Everything one run shares; :meth:`close` removes all of it, also after an error."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = QUICK if args.quick else FULL
        self.rng = random.Random(args.seed)
        self.workdir = Path(tempfile.mkdtemp(prefix="notifyagent-bench-"))
        self.code = self.workdir / "code"
        self.launch = Launch(
            pgagent=args.pgagent,
            notifyagent_args=shlex.split(args.notifyagent_args)
            + (["--alert-urls", args.alert_url, "--alert-on", "all"] if args.alert_url else []),
            code=self.code,
            env=snapshot_env(self.code),
            processes=Processes(),
        )
        self.agent_starts = 0
        self.git = "?"
        self.agent_code = "?"
        # made here, started in open(): close() removes its directory whatever happened
        self.cluster = Cluster(settings={"max_connections": str(args.max_connections)})
        self.server: Server | None = None
        self.admin: Conn | None = None

    def dsn(self, dbname: str) -> str:
        """The benchmark's own connections (not counted as the agent's: other app name)."""
        return self.cluster.dsn(dbname, application_name=BENCH_APP)

    def snapshot(self) -> str:
        """Copy the code under test (notifyagent/, sql/) so that every agent of this run runs
        the same code, however the working tree changes meanwhile; returns its git state."""
        git = git_state()
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for part in ("notifyagent", "sql"):
            shutil.copytree(REPO / part, self.code / part, ignore=ignore)
        return git

    def open(self) -> None:
        self.git = self.snapshot()
        self.agent_code = subprocess.run(
            [sys.executable, "-c", "import notifyagent; print(notifyagent.__file__)"],
            capture_output=True,
            text=True,
            check=True,
            env=self.launch.env,
            cwd=self.code,
        ).stdout.strip()
        if not self.agent_code.startswith(str(self.code)):
            raise BenchError(f"agents would not run the snapshot but {self.agent_code}")
        say(f"agents run a snapshot of {REPO} ({self.git}): {self.agent_code}")
        say(f"starting a throwaway PostgreSQL cluster in {self.cluster.base}")
        self.server = Server(cluster=self.cluster)
        self.admin = connect(self.dsn("postgres"))
        self.server.admin(f'CREATE DATABASE "{TEMPLATE}"')
        with connect(self.dsn(TEMPLATE)) as conn:
            conn.execute("CREATE EXTENSION pgagent")
            conn.execute(
                "CREATE TABLE public.bench_tick (id bigserial PRIMARY KEY, jobid int NOT NULL, "
                "due timestamptz, ran_at timestamptz NOT NULL DEFAULT clock_timestamp())"
            )

    def close(self) -> None:
        self.launch.processes.stop_all()
        if self.admin is not None:
            with contextlib.suppress(Exception):
                self.admin.close()
        self.cluster.destroy()  # also if the server never started
        if self.args.keep_logs:
            say(f"agent logs kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @contextlib.contextmanager
    def database(self, prefix: str) -> Iterator[Database]:
        """A fresh database from the template, dropped afterwards (the server log kept with
        --keep-logs); a failing drop must not hide the scenario's own error."""
        assert self.server is not None
        made = new_database(self.server, prefix, TEMPLATE)
        db = next(made)
        try:
            yield db
        finally:
            if self.args.keep_logs and self.cluster.logfile.exists():
                shutil.copy(self.cluster.logfile, self.workdir / "postgres.log")
            with contextlib.suppress(psycopg.Error):
                made.close()  # new_database's DROP DATABASE ... WITH (FORCE)

    @contextlib.contextmanager
    def scenario(self, variant: Variant, name: str) -> Iterator[tuple[Database, Conn]]:
        """The scenario's fresh database and the benchmark's connection to it."""
        with self.database(variant.database(name)) as db, connect(self.dsn(db.name)) as conn:
            yield db, conn

    @contextlib.contextmanager
    def running(
        self, variant: Variant, dbname: str, observer: Conn, log_level: str = "INFO"
    ) -> Iterator[Agent]:
        """A freshly started agent, ready (queue loaded / registered); SIGTERM at the end."""
        self.agent_starts += 1
        logfile = self.workdir / f"{self.agent_starts:02d}-{dbname}.agent.log"
        dsn = self.cluster.dsn(dbname, application_name=AGENT_APP)
        agent = Agent(self.launch, variant, dsn, logfile, log_level).start()
        try:
            agent.wait_ready(observer)
            yield agent
        finally:
            code = agent.stop()
            if code not in (0, -signal.SIGTERM) and not variant.is_pgagent:
                say(f"warning: {variant.label} exited with code {code}")
            if self.args.keep_logs:
                say(f"agent log: {agent.logfile}")
