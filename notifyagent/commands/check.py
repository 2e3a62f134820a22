"""``notifyagent check``: can we reach the database and is the pgagent schema usable?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from notifyagent import conninfo, db
from notifyagent.db.schema import NOTIFYAGENT_SCHEMA_VERSION, Probe, verify_pgagent
from notifyagent.db.sql import fetch


@dataclass(frozen=True)
class Report:
    dsn: str
    probe: Probe
    agents: list[dict[str, Any]]
    jobs: int
    enabled_jobs: int

    def render(self) -> str:
        p = self.probe
        installed = (
            f"version {p.notifyagent_version}"
            if p.notifyagent_version is not None
            else f"not installed (serve installs version {NOTIFYAGENT_SCHEMA_VERSION})"
        )
        lines = [
            f"database          {conninfo.display(self.dsn)}",
            f"server            PostgreSQL {p.server_version}",
            f"pgagent           extension {p.pgagent_version or '?'}, schema version "
            f"{p.schema_version} (ok)",
            f"notifyagent       triggers {installed}",
            f"jobs              {self.jobs} ({self.enabled_jobs} enabled)",
            f"agents            {len(self.agents)} registered in pgagent.pga_jobagent",
        ]
        lines += [
            f"  pid {a['jagpid']:<8} station {a['jagstation']:<24} since {a['jaglogintime']}"
            for a in self.agents
        ]
        return "\n".join(lines)


async def check(dsn: str) -> int:
    async with await db.connect(dsn, app="notifyagent check") as conn:
        probe = await verify_pgagent(conn)
        agents = await fetch(conn, "report_agents")
        (counts,) = await fetch(conn, "report_jobs")
    report = Report(dsn, probe, agents, int(counts["jobs"]), int(counts["enabled"]))
    print(report.render())
    return 0
