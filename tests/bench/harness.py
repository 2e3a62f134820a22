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
from dataclasses import dataclass
from pathlib import Path

import psycopg

from notifyagent.cluster import Cluster
from tests.agent import agent_environ
from tests.bench import cron
from tests.bench.agents import Agent, Hanging, Launch, Processes
from tests.bench.config import (
    AGENT_APP,
    BENCH_APP,
    FULL,
    QUICK,
    REPO,
    SITE_SETTINGS,
    BenchError,
    Variant,
    say,
)
from tests.bench.meta import git_state
from tests.pg import Conn, Database, Server, connect, new_database

TEMPLATE = "bench_template"


def snapshot_env(code: Path) -> dict[str, str]:
    """The environment of agent processes: the snapshot first on the path (they also run
    with it as cwd: `python -m` puts the current directory first on sys.path)."""
    env = agent_environ()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
    return env


def copy_code(dest: Path) -> None:
    """The code agents run (notifyagent/, sql/), copied to ``dest``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("notifyagent", "sql"):
        shutil.copytree(REPO / part, dest / part, ignore=ignore)


@dataclass
class Site:
    """One throwaway cluster: ``plain`` (the test suite's settings, fsync off), ``durable``
    (fsync and synchronous_commit on) or ``cron`` (plain, with pg_cron loaded); started when a
    scenario first needs it, so a run without durable or pg_cron rows starts one cluster."""

    name: str
    cluster: Cluster
    server: Server | None = None
    admin: Conn | None = None

    def dsn(self, dbname: str, app: str = BENCH_APP) -> str:
        return self.cluster.dsn(dbname, application_name=app)

    def open(self) -> None:
        say(f"starting a throwaway PostgreSQL cluster ({self.name}) in {self.cluster.base}")
        if self.name == "cron":
            self.cluster.settings.update(cron.server_settings(self.cluster.host))
        self.server = Server(cluster=self.cluster)
        self.admin = connect(self.dsn("postgres"))
        self.server.admin(f'CREATE DATABASE "{TEMPLATE}"')
        with connect(self.dsn(TEMPLATE)) as conn:
            conn.execute("CREATE EXTENSION pgagent")
            conn.execute(
                "CREATE TABLE public.bench_tick (id bigserial PRIMARY KEY, jobid int NOT NULL, "
                "due timestamptz, ran_at timestamptz NOT NULL DEFAULT clock_timestamp(), "
                "app text DEFAULT current_setting('application_name'))"
            )
        if self.name == "cron":
            cron.install(self.server, self.dsn(cron.CRON_DB))

    def close(self) -> None:
        if self.admin is not None:
            with contextlib.suppress(Exception):
                self.admin.close()
        self.cluster.destroy()  # also if the server never started


class Harness:
    """Everything one run shares; :meth:`close` removes all of it, also after an error."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = QUICK if args.quick else FULL
        self.rng = random.Random(args.seed)
        self.workdir = Path(tempfile.mkdtemp(prefix="notifyagent-bench-"))
        self.code = self.workdir / "code"
        self.hanging = Hanging()
        self.launch = Launch(
            hanging_url=self.hanging.url,
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
        # made here, started when first used: close() removes their directories whatever
        # happened
        self.sites = {
            name: Site(
                name,
                Cluster(settings={"max_connections": str(args.max_connections), **extra}),
            )
            for name, extra in SITE_SETTINGS.items()
        }

    def site(self, variant: Variant | None = None) -> Site:
        """The cluster ``variant`` runs on (default: the plain one), started if need be."""
        site = self.sites[variant.site if variant is not None else "plain"]
        if site.server is None:
            site.open()
        return site

    @property
    def cluster(self) -> Cluster:
        return self.site().cluster

    @property
    def admin(self) -> Conn | None:
        return self.site().admin

    def dsn(self, dbname: str, variant: Variant | None = None) -> str:
        """The benchmark's own connections (not counted as the agent's: other app name)."""
        return self.site(variant).dsn(dbname)

    def snapshot(self) -> str:
        """Copy the code under test so that every agent of this run runs the same code,
        however the working tree changes meanwhile; returns its git state."""
        git = git_state()
        copy_code(self.code)
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
        self.site()

    def close(self) -> None:
        self.launch.processes.stop_all()
        self.hanging.close()
        for site in self.sites.values():
            site.close()
        if self.args.keep_logs:
            say(f"agent logs kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @contextlib.contextmanager
    def database(self, prefix: str, variant: Variant | None = None) -> Iterator[Database]:
        """A fresh database from the template, dropped afterwards (the server log kept with
        --keep-logs); a failing drop must not hide the scenario's own error."""
        site = self.site(variant)
        assert site.server is not None
        made = new_database(site.server, prefix, TEMPLATE)
        db = next(made)
        try:
            yield db
        finally:
            if self.args.keep_logs and site.cluster.logfile.exists():
                shutil.copy(site.cluster.logfile, self.workdir / f"postgres-{site.name}.log")
            with contextlib.suppress(psycopg.Error):
                made.close()  # new_database's DROP DATABASE ... WITH (FORCE)

    @contextlib.contextmanager
    def scenario(self, variant: Variant, name: str) -> Iterator[tuple[Database, Conn]]:
        """The scenario's fresh database and the benchmark's connection to it."""
        with (
            self.database(variant.database(name), variant) as db,
            connect(self.dsn(db.name, variant)) as conn,
        ):
            yield db, conn

    @contextlib.contextmanager
    def running(
        self,
        variant: Variant,
        dbname: str,
        observer: Conn,
        log_level: str = "INFO",
        extra_args: tuple[str, ...] = (),
        ready_timeout: float = 60.0,
        app: str = AGENT_APP,
    ) -> Iterator[Agent]:
        """A freshly started agent, ready (queue loaded / registered); SIGTERM at the end."""
        self.agent_starts += 1
        logfile = self.workdir / f"{self.agent_starts:02d}-{dbname}.agent.log"
        dsn = self.site(variant).dsn(dbname, app)
        agent = Agent(self.launch, variant, dsn, logfile, log_level, extra_args).start()
        try:
            agent.wait_ready(observer, ready_timeout)
            yield agent
        finally:
            code = agent.stop()
            if code not in (0, -signal.SIGTERM) and not variant.is_pgagent:
                say(f"warning: {variant.label} exited with code {code}")
            if self.args.keep_logs:
                say(f"agent log: {agent.logfile}")
