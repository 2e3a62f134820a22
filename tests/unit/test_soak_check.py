"""The soak's checker (tests/soak/check.py) on hand-made histories: each rule it enforces
fails when broken, and what the agent may legitimately do passes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.soak.check import check, due_times
from tests.soak.model import Edit, JobModel, Request, Run, Soak, Window

T0 = datetime(2030, 1, 1, 10, 0, 0, tzinfo=UTC)
EVERY_MINUTE = JobModel(1, "minute", minutes=frozenset(range(60)))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(jlgid: int, start: float, status: str = "s", job: int = 1, lag: float = 0.002,
        took: float | None = 0.05) -> Run:  # fmt: skip
    end = None if took is None else at(start + took)
    return Run(job, jlgid, at(start), end, status, at(start + lag), 1)


def soak(jobs: list[JobModel], runs: list[Run], minutes: float = 5, **kw: object) -> Soak:
    defaults: dict[str, object] = {"edits": [], "requests": [], "windows": []}
    defaults.update(kw)
    return Soak({j.jobid: j for j in jobs}, at(-1), at(minutes * 60 - 1), runs=runs,
                **defaults)  # type: ignore[arg-type]  # fmt: skip


def kinds(s: Soak) -> list[str]:
    return sorted(v["kind"] for v in check(s).violations)


def test_every_due_run_once_passes_and_counts() -> None:
    v = check(soak([EVERY_MINUTE], [run(n, 60 * n) for n in range(5)]))
    assert v.violations == []
    assert (v.counts["due"], v.counts["ran"]) == (5, 5)
    assert len(v.lags["alone"]) == 5


def test_lag_is_split_by_faults_and_by_company() -> None:
    """A run whose way from due time to first step crosses a fault is not steady state; a run
    due within a second after another job fell due (here: a Run now) is due together with it,
    however late either started."""
    asked = JobModel(2, "on-demand")
    runs = [run(n, 60 * n) for n in range(5)] + [run(10, 119.6, job=2)]
    fault = Window("kill-listener", at(180.001), at(181))
    v = check(soak([EVERY_MINUTE, asked], runs, windows=[fault], requests=[Request(2, at(119.5))]))
    assert v.violations == []
    assert (len(v.lags["alone"]), len(v.lags["together"]), len(v.lags["in_fault"])) == (3, 1, 1)


def test_a_second_run_of_one_due_time_is_a_double_run() -> None:
    runs = [run(n, 60 * n) for n in range(5)] + [run(9, 61.5)]
    assert kinds(soak([EVERY_MINUTE], runs)) == ["twice"]


def test_a_missing_run_outside_faults_is_missed() -> None:
    runs = [run(n, 60 * n) for n in range(5) if n != 2]
    assert kinds(soak([EVERY_MINUTE], runs)) == ["missed"]


def test_outage_catch_up_rule() -> None:
    """Due at 120 s and 180 s during an outage (no agent): one catch-up run after it, at
    185 s, makes up for both; without it, the due time before the first strict one is
    missed."""
    outage = Window("restart-fast", at(110), at(184), relaxes=True)
    runs = [run(0, 0), run(1, 60), run(2, 185, lag=0.3), run(3, 240)]
    assert kinds(soak([EVERY_MINUTE], runs, windows=[outage])) == []
    short = Window("restart-fast", at(110), at(130), relaxes=True)
    assert kinds(soak([EVERY_MINUTE], [run(0, 0), run(1, 60), run(3, 180), run(4, 240)],
                      windows=[short])) == ["missed"]  # fmt: skip


def test_outage_of_another_station_does_not_excuse_a_miss() -> None:
    pinned = JobModel(1, "pinned", station="b", minutes=frozenset(range(60)))
    other = Window("sigkill", at(110), at(200), station="c", relaxes=True)
    runs = [run(n, 60 * n) for n in range(5) if n != 2]
    assert kinds(soak([pinned], runs, windows=[other])) == ["missed"]
    mine = Window("sigkill", at(110), at(200), station="b", relaxes=True)
    assert kinds(soak([pinned], [*runs], windows=[mine])) == []


def test_retries_allowed_by_the_policy_only() -> None:
    job = JobModel(1, "retry", minutes=frozenset(range(60)), retries=2, expect="f")
    chain = [run(1, 0, "f"), run(2, 4.1, "f"), run(3, 12.2, "f")]
    assert kinds(soak([job], chain, minutes=1)) == []
    assert kinds(soak([job], [*chain, run(4, 28.3, "f")], minutes=1)) == ["twice"]
    assert kinds(soak([job], [run(1, 0, "s"), run(2, 4.1, "f")], minutes=1)) == [
        "status",
        "twice",
    ]


def test_a_step_that_ticks_before_its_due_time_started_early() -> None:
    assert kinds(soak([EVERY_MINUTE], [run(n, 60 * n, lag=-0.004 if n == 3 else 0.002)
                                       for n in range(5)])) == ["early"]  # fmt: skip


def test_due_while_the_job_still_runs_is_skipped() -> None:
    slow = JobModel(1, "slow", minutes=frozenset(range(60)))
    runs = [run(0, 0, took=70), run(1, 120, took=70), run(2, 240, took=70)]
    v = check(soak([slow], runs))
    assert v.violations == []
    assert v.counts["skipped_while_running"] == 2


def test_a_lost_run_counts_as_running_until_the_next_one() -> None:
    """A run its agent lost ('d') has no duration: it counts as running until the job's next
    run started, so the due time in between is a skip, not a miss."""
    slow = JobModel(1, "slow", minutes=frozenset(range(60)), expect=None)
    runs = [run(0, 0, "d", took=None), run(1, 120, took=70), run(2, 240)]
    v = check(soak([slow], runs))
    assert v.violations == []
    assert v.counts["skipped_while_running"] == 2


def test_wrong_status_outside_faults_only() -> None:
    runs = [run(n, 60 * n, "f" if n == 1 else "s") for n in range(5)]
    assert kinds(soak([EVERY_MINUTE], runs)) == ["status"]
    hit = Window("kill-steps", at(59), at(61))
    assert kinds(soak([EVERY_MINUTE], runs, windows=[hit])) == []


def test_run_now_requests_coalesce_rerun_and_are_never_lost() -> None:
    job = JobModel(7, "on-demand")
    two_before_start = [Request(7, at(10)), Request(7, at(10.1))]
    assert kinds(soak([job], [run(1, 10.2, job=7)], requests=two_before_start)) == []
    while_running = [Request(7, at(10)), Request(7, at(10.5))]
    runs = [run(1, 10.2, job=7, took=1), run(2, 11.3, job=7)]
    assert kinds(soak([job], runs, requests=while_running)) == []
    assert kinds(soak([job], runs[:1], requests=while_running)) == ["run_now_lost"]
    assert kinds(soak([job], [*runs, run(3, 30, job=7)], requests=while_running)) == ["unexpected"]


def test_edits_switch_the_minutes_and_blur_only_near_the_edit() -> None:
    job = JobModel(1, "edited", minutes=frozenset({0, 2, 4}))
    edit = Edit(1, at(150), frozenset({3}))
    times = due_times(job, [edit], T0, at(299))
    assert [t for t, _ in times] == [at(0), at(120), at(180)]
    runs = [run(1, 0), run(2, 120), run(3, 180)]
    assert kinds(soak([job], runs, edits=[edit])) == []
    assert kinds(soak([job], [*runs, run(4, 240)], edits=[edit])) == ["twice"]


def test_every_ticks_are_anchored_at_the_epoch() -> None:
    job = JobModel(1, "every", every=7)
    times = [t for t, _ in due_times(job, [], T0, at(30))]
    assert all(int(t.timestamp()) % 7 == 0 for t in times)
    assert len(times) in (4, 5)
