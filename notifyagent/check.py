"""``notifyagent check``: can we reach the database and is the pgagent schema usable?"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from notifyagent import conninfo, db
from notifyagent.db.schema import NOTIFYAGENT_SCHEMA_VERSION, Probe, verify_pgagent
from notifyagent.db.sql import query


@dataclass
class Report:
    dsn: str
    probe: Probe
    agents: list[dict[str, Any]] = field(default_factory=list)
    jobs: int = 0
    enabled_jobs: int = 0

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


async def run_check(dsn: str) -> Report:
    conn = await db.connect(dsn, app="notifyagent check")
    async with conn:
        probe = await verify_pgagent(conn)
        agents = await (await conn.execute(query("report_agents"))).fetchall()
        counts = await (await conn.execute(query("report_jobs"))).fetchone()
        assert counts is not None
        return Report(
            dsn=dsn,
            probe=probe,
            agents=[dict(a) for a in agents],
            jobs=int(counts["jobs"]),
            enabled_jobs=int(counts["enabled"]),
        )
