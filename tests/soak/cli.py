"""``scripts/soak``: the command line of the chaos soak."""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from tests.soak import doc
from tests.soak.report import table
from tests.soak.run import Options, run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="scripts/soak",
        description="Three notifyagent serve processes, a primary and a standby, about a "
        "thousand jobs, and random faults for MINUTES; then checks that every due run ran "
        "exactly once, none early, nothing stuck or left claimed, recovery within bounds, lag "
        "outside the faults within the targets, memory flat. Exit code 0 when all hold.",
    )
    p.add_argument("--minutes", type=float, default=60.0, help="length of the fault phase")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: a new one)")
    p.add_argument("--jobs", type=int, default=1000, help="about how many jobs")
    p.add_argument("--json", type=Path, default=None, help="write the results there")
    p.add_argument("--keep-logs", action="store_true", help="keep the agents' logs")
    p.add_argument(
        "--update-doc",
        type=Path,
        metavar="RESULTS",
        default=None,
        help="only put the table of a results file into docs/operations.md",
    )
    args = p.parse_args(argv)
    if args.update_doc:
        doc.update(args.update_doc.resolve())
        return 0
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    result = run(Options(args.minutes, seed, args.jobs, args.keep_logs))
    text = json.dumps(result, indent=1, default=str)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)
    print(table(result), file=sys.stderr)
    print(f"soak {'passed' if result['passed'] else 'FAILED'} (seed {seed})", file=sys.stderr)
    return 0 if result["passed"] else 1
