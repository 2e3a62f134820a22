"""The command line: ``scripts/bench`` (or ``python -m tests.bench``); ``--help`` documents
every scenario and how it measures, which BENCHMARKS.md relies on."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg

from tests.bench.config import SCENARIOS, VARIANTS, BenchError, say
from tests.bench.doc import add_target_options, choose_agents, update_doc
from tests.bench.harness import Harness
from tests.bench.report import render, render_meta, render_targets
from tests.bench.runner import run_all

DESCRIPTION = """\
Benchmark notifyagent against the real pgAgent (C++, `pgagent -f`) on a throwaway PostgreSQL
cluster that this script creates and removes. Every number is measured from outside the agents:
each job's single SQL step inserts a row into public.bench_tick stamped with clock_timestamp()
(the moment the step started) together with the pga_job.jobnextrun the run was due at (read by
the step itself; jobnextrun does not change while a job runs). lag = step start - due time.
Every scenario runs on a fresh database with a freshly started agent, which is stopped with
SIGTERM afterwards. spaced and run-now measure after one warm-up run of a separate job (the
first run after a start pays for new connections and cold server caches; its lag is kept in the
JSON as first_run_lag_ms). notifyagent runs as `python -m notifyagent serve --station bench`
(defaults otherwise); pgAgent runs as `pgagent -f` with its default poll (5 s) and with `-t 1`.

scenarios (--scenarios):
  floor    No agent: what this machine can do at best, in the same run: how late a bare
           asyncio.sleep returns, a round trip to a backend idle for 50-300 ms (SELECT 1; an
           INSERT with its commit, the WAL flush on the durable server) and a LISTEN/NOTIFY
           round trip (100 samples each; --quick 20). The floors of the lag targets are
           composed from them.
  spaced   N one-step jobs (50; --quick 5) whose jobnextrun is set, once the agent is up, to
           staggered random instants over ~15 s (--quick 1 s) starting 2 s ahead.
           Reports lag min / p50 / p99 / max in ms.
  run-now  On an idle agent, one job at a time: `UPDATE pgagent.pga_job SET jobnextrun = now()
           ... RETURNING clock_timestamp()` (autocommit, so that timestamp is the commit, give
           or take microseconds); then wait until the run is released, pause a random time
           (uniform in [0, poll interval) for pgAgent so that its poll phase is sampled evenly,
           0.05-0.5 s for notifyagent) and repeat (30 samples; --quick 3).
           Reports lag (step start - commit) min / p50 / p99 / max in ms.
  every    One job every second for 20 s (--quick 3 s): notifyagent's policy
           notifyagent.job_policy.every = '1 second' vs pg_cron's '1 seconds' schedule (pg_cron
           >= 1.5; an older one rejects it, which is reported). Ticks ran / missed, lag after
           the tick, the agent's CPU and wake-ups per tick.
  herd     N one-step jobs (1000; --quick 20) all due at the same instant (3 s ahead).
           Reports how many runs succeeded (run log 's'), failures, extra runs and phantom 'i'
           run-log rows, lag p50 / p99 / max, the time from the due instant until the last
           run finished (max of jlgstart + jlgduration), and the agent process's CPU
           (utime+stime from /proc) per run. pg_cron: N jobs '* * * * *' due at the next
           minute boundary, lag from the boundary, failures from cron.job_run_details.
  herd-10k notifyagent only: 10,000 jobs (--quick 100) due at once, `--max-concurrency 500`
           against the server's max_connections (default 100): every run must succeed.
  scale-out notifyagent only: a herd of 3,000 (--quick 30) with 1, 2 and 3 agents (stations)
           on one database: time until the last finished, each agent's share, agents' and
           the server's CPU (the postmaster and all its children, from /proc).
  idle     20 jobs scheduled ~12 h ahead, nothing due; the database has log_statement = 'all'
           and the agent connects with application_name=bench_agent. Over a 60 s window
           (--quick 3 s) starting 12 s after the agent is ready, every statement the agent's
           sessions sent is counted from the server log (prefix '%m [%p] %a '), grouped into
           transactions per backend (BEGIN..COMMIT = 1, any other statement outside a block = 1,
           an empty query the connection pool sends as a health check included).
           Also the agent process's wake-ups (voluntary context switches, all threads) and CPU.
           pg_cron: jobs scheduled months ahead; its launcher's wake-ups and CPU, and the
           transactions of its database from pg_stat_database (its SPI reads are not logged).
           Reports transactions per minute, and those beyond notifyagent's liveness check (its
           `SELECT pg_notify('notifyagent', 'ping:...') ... zombies` statement and the pool
           check right before it). pg_stat_database's xact_commit+xact_rollback delta over the
           same window is kept in the JSON as a cross-check (idle backends flush their
           counters up to 10 s late, hence the 12 s wait before the window).
  scale    notifyagent only: 100,000 jobs (--quick 1,000) with one schedule (hours ahead) and one
           step each, plus one probe job, created before the agent starts (notifyagent's
           triggers installed). At the default log level: start-up until the queue is loaded
           (the agent's own `queue loaded ... in X ms`, and process start -> that log line),
           VmRSS/VmHWM from /proc/<pid>/status right after the load, and one UPDATE of
           pga_schedule changing 10,000 schedules (--quick 100) followed, in the same
           transaction, by a run-now of the probe job: the probe's notification is delivered
           after all the others and the agent refreshes every job it was told about before it
           claims the probe, so commit -> probe step start bounds the time until the queue
           reflects all changes (plus one claim, a few ms); the UPDATE's own duration is
           reported too. Then the same again at --log-level DEBUG:
           the last `queue: job N due at <ts>` line of a changed job (every logged due time
           is checked against pga_job.jobnextrun; the DEBUG lines themselves slow the agent).
  curve    notifyagent only: one database grown to 10,000 and 100,000 jobs (--scale: and
           1,000,000; --quick 100 and 1,000); at each size the agent is started: queue load
           time, RSS, start-up CPU, and the cost per job (and the marginal cost since the last
           size), which shows whether it grows linearly.

agents (--agents): notifyagent; notifyagent-durable (notifyagent on a second cluster with
fsync, synchronous_commit and full_page_writes on: floor, spaced, run-now, herd);
notifyagent-alerting (every run alerts to a loopback port that never answers: spaced,
run-now, herd); pgagent
(default poll) and pgagent-t1 (-t 1): spaced, run-now, herd, idle; pg_cron (a third cluster
with pg_cron loaded, cron.host = its socket dir; skipped with a note if the server has no
pg_cron): every, herd, idle.

Every scenario runs for every agent that supports it, scenario by scenario, the herds last
(pgAgent's herd leaves hundreds of threads and a high load behind); the output is a Markdown
table with the agents side by side, the ratios to notifyagent, then notifyagent's targets
(met or not, with the floor where one applies), printed on stdout and saved with all details
(machine, command, raw lags, the load average around each scenario) as JSON (--json).
`--update-doc RESULTS.json` writes those tables into BENCHMARKS.md.
"""

EPILOG = """\
examples:
  scripts/bench                      full run, every agent (about 16 minutes)
  scripts/bench --quick              tiny version of everything (about a minute plus the wait
                                     for pg_cron's minute boundary; pgAgent only with -t 1)
  scripts/bench --scale --scenarios curve --agents notifyagent     the 10k/100k/1M curve
  scripts/bench --update-doc benchmarks/results/RUN.json           BENCHMARKS.md from a run
  scripts/bench --agents notifyagent --scenarios spaced,run-now
"""


def _csv(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in items if x not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {', '.join(allowed)}; got {text!r}"
            )
        return items

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/bench",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes (seconds per scenario); pgAgent only with -t 1 unless --agents says "
        "otherwise. The test suite runs this so the benchmark cannot rot",
    )
    p.add_argument(
        "--agents",
        type=_csv(tuple(VARIANTS)),
        default=None,
        help=f"which agents, comma-separated: {', '.join(VARIANTS)}. Default: all "
        "(--quick: all but pgagent; pg_cron only if the server has it)",
    )
    p.add_argument(
        "--scenarios",
        type=_csv(SCENARIOS),
        default=list(SCENARIOS),
        help=f"which scenarios, comma-separated (default: {','.join(SCENARIOS)})",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=Path("bench-results.json"),
        help="where to write all results as JSON (default: %(default)s)",
    )
    p.add_argument("--pgagent", default="pgagent", help="the pgAgent binary (default: %(default)s)")
    p.add_argument(
        "--notifyagent-args",
        default="",
        help="extra arguments for `notifyagent serve`, e.g. '--max-concurrency 64'",
    )
    p.add_argument(
        "--alert-url",
        default=None,
        metavar="URL",
        help="notifyagent sends an alert for every run (--alert-on all) to this Apprise URL, "
        "e.g. a loopback port that never answers (json://127.0.0.1:PORT/): delivery must not "
        "move the start lags",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=100,
        help="the cluster's max_connections (default: %(default)s, PostgreSQL's default)",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed (due-time offsets, pauses)")
    add_target_options(p)
    p.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the agents' logs and the server log in a temp dir (printed at the end)",
    )
    return p


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _measure(args: argparse.Namespace) -> dict[str, Any] | int:
    """The report, or an exit code; the cluster, the agents and the temp files are removed
    in every case (Ctrl-C, SIGTERM and SIGHUP included)."""
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    bench = Harness(args)
    try:
        bench.open()
        return run_all(bench)
    except KeyboardInterrupt:
        print("scripts/bench: interrupted; cleaning up", file=sys.stderr)
        return 130
    except (BenchError, psycopg.Error, OSError, subprocess.CalledProcessError) as err:
        print(f"scripts/bench: {err}; cleaning up", file=sys.stderr)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        bench.close()


def _publish(report: dict[str, Any], json_path: Path) -> int:
    """The table on stdout, everything (the table included) in the JSON."""
    table = render(report)
    meta = render_meta(report["meta"])
    report["markdown"] = table
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(meta)
    print()
    print(table)
    print()
    print(render_targets(report))
    if report["errors"]:
        print("\nerrors:\n" + "\n".join(report["errors"]), file=sys.stderr)
    say(f"results written to {json_path}")
    return 1 if report["errors"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.update_doc is not None:
        return update_doc(args.update_doc)
    choose_agents(args)
    if any(VARIANTS[a].is_pgagent for a in args.agents) and shutil.which(args.pgagent) is None:
        print(f"scripts/bench: pgAgent binary {args.pgagent!r} not found", file=sys.stderr)
        return 2
    report = _measure(args)
    return report if isinstance(report, int) else _publish(report, args.json)
