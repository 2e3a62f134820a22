"""The chaos soak, two minutes of it (``scripts/soak --minutes 2``): three agents, a primary
and a standby, about a thousand jobs, faults of most kinds the deck deals in that time. The
hour-long run and its results are in docs/operations.md; NOTIFYAGENT_SOAK_SEED picks the seed.

Every correctness check must hold. The lag targets are the script's business (timing goals live
in scripts/, CI machines vary): here only loose upper bounds, which a scheduler that lost its
timer (a poll, a stuck queue) would still break.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.soak.report import table
from tests.soak.run import Options, run

pytestmark = pytest.mark.slow

#: loose bounds of the p99 start lag outside faults (ms); the script holds 500 and 50
LOOSE_P99_MS = {"together": 2000.0, "alone": 500.0}


@pytest.mark.timeout(420)  # two minutes of faults, plus set-up, settling and the check
def test_two_minutes_of_chaos_lose_double_and_strand_nothing() -> None:
    seed = int(os.environ.get("NOTIFYAGENT_SOAK_SEED", "18"))
    result = run(Options(minutes=2, seed=seed))
    print(table(result))
    assert result["counts"]["due"] > 300, result["counts"]
    assert result["counts"]["run_now"] > 100, result["counts"]
    assert len(result["faults"]) >= 6, result["faults"]
    problems = [p for p in result["problems"] if p["kind"] != "lag_over_target"]
    found = {"violations": result["violations"], "problems": problems, "counts": result["counts"]}
    assert not found["violations"], json.dumps(found, indent=1, default=str)
    assert not problems, json.dumps(found, indent=1, default=str)
    for kind, limit in LOOSE_P99_MS.items():
        p99 = result["lag"].get(kind, {}).get("p99_ms")
        assert p99 is None or p99 < limit, (kind, result["lag"][kind])
