"""Run a list of scenario jobs under the real pgAgent or under notifyagent; return the history."""

from __future__ import annotations

from collections.abc import Sequence

from tests.agent import AgentProcess
from tests.compat import scenario
from tests.compat.history import JobHistory, capture
from tests.compat.pgagent import PgAgentProcess
from tests.pg import Database


def run_under_pgagent(
    db: Database, jobs: Sequence[scenario.ScenarioJob], timeout: float = 20
) -> dict[str, JobHistory]:
    """Create ``jobs`` in ``db``, run them under ``pgagent -f -t 1``, stop it (SIGTERM: its
    ``pga_jobagent`` row stays behind, as it always does) and return what it wrote."""
    ids = scenario.create(db, jobs)
    agent = PgAgentProcess(db)
    try:
        agent.start(scenario.station())
        try:
            scenario.drive(db, jobs, ids, timeout=timeout, describe="under pgagent")
        except AssertionError as err:
            raise AssertionError(f"{err}\npgagent log (tail):\n{agent.log()}") from None
    finally:
        agent.close()
    return capture(db)


def run_under_notifyagent(
    db: Database, jobs: Sequence[scenario.ScenarioJob], *args: str, timeout: float = 20
) -> dict[str, JobHistory]:
    """The same under ``notifyagent serve --station <host name> *args``."""
    ids = scenario.create(db, jobs)
    agent = AgentProcess(db.dsn, args, station=scenario.station())
    try:
        agent.start()
        try:
            scenario.drive(db, jobs, ids, timeout=timeout, describe="under notifyagent")
        except AssertionError as err:
            raise AssertionError(f"{err}\nnotifyagent log (tail):\n{agent.log()[-4000:]}") from None
        assert agent.stop() == 0, agent.log()[-4000:]
    finally:
        agent.close()
    return capture(db)
