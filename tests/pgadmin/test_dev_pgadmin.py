"""``notifyagent dev --pgadmin``: the printed URL serves pgAdmin with the throwaway cluster
listed and connected; a job made through pgAdmin's endpoints runs under the dev agent and
survives a save of the jobs file; Ctrl-C stops pgAdmin, the agent and the cluster."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from notifyagent import conninfo
from notifyagent.pgadmin import PgAdminClient
from tests.pg import wait_for
from tests.pgadmin import pga

JOBS = """
[[jobs]]
name = "from_the_file"

[[jobs.steps]]
name = "one"
kind = "sql"
database = "postgres"
code = "SELECT 1"
"""
URL = re.compile(r"pgAdmin 4 \(desktop mode\): open (http://127\.0\.0\.1:\d+)/\?key=(\w+)")


@pytest.mark.timeout(240)
def test_dev_mode_with_pgadmin(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(JOBS)
    log = tmp_path / "dev.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFYAGENT_", "PG"))}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "notifyagent", "dev", str(jobs), "--pgadmin"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        found = wait_for(lambda: URL.search(log.read_text()), 180, 0.2, "pgAdmin's URL")
        base, key = found.group(1), found.group(2)
        assert "dev mode: serving" in log.read_text()
        api = PgAdminClient(base, key)
        api.login()  # what opening the URL does: /?key= logs in, then /browser/ is the page
        status, page = api.request("GET", "/browser/")
        assert status == 200
        assert "<title>pgAdmin 4</title>" in page
        (server,) = api.call("GET", "/browser/server/nodes/1/")["result"]
        assert server["label"] == "notifyagent dev"
        assert api.connect_server(int(server["_id"]))["connected"] is True
        pgagent = pga.PgAgentNode(api, int(server["_id"]))
        assert [n["label"] for n in pgagent.job_nodes()] == ["from_the_file"]

        jid = pgagent.create_job(
            pga.job("made_in_pgadmin", [pga.sql_step("s", "SELECT 2", "postgres")])
        )["_id"]
        assert pgagent.run_now(jid)["success"] == 1
        assert [r["Status"] for r in pgagent.wait_runs(jid)] == ["s"]
        assert re.search(r"job \d+ \(made_in_pgadmin\)", log.read_text())

        applied = log.read_text().count("apply: ")
        jobs.write_text(JOBS.replace("SELECT 1", "SELECT 3"))
        wait_for(lambda: log.read_text().count("apply: ") > applied, 10, what="a new apply")
        assert sorted(n["label"] for n in pgagent.job_nodes()) == [
            "from_the_file",
            "made_in_pgadmin",
        ]
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    text = log.read_text()
    assert code == 0, text
    with pytest.raises(urllib.error.URLError, match="Connection refused"):  # pgAdmin stopped
        urllib.request.urlopen(f"{base}/misc/ping?key={key}", timeout=5)  # noqa: S310
    dsn = re.search(r"embedded PostgreSQL ready: dsn (.+)$", text, re.MULTILINE)
    assert dsn is not None, text
    assert not Path(conninfo.parse(dsn.group(1).strip())["host"]).exists()
