"""pgAdmin's page in headless Chromium: the Object Explorer down to a job notifyagent ran,
its Statistics tab, and a step's, read as rendered and saved as screenshots.

Playwright drives Debian's Chromium (``executable_path``; Playwright's own browser download is
never used). Screenshots go to ``$NOTIFYAGENT_SCREENSHOTS`` (the PNGs under docs/images come
from there), else to the test's temp dir.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect, sync_playwright

from notifyagent.pgadmin import PgAdmin
from tests.pgadmin import pga
from tests.pgadmin.pga import Stage

CHROMIUM = os.environ.get("NOTIFYAGENT_TEST_CHROMIUM", "/usr/bin/chromium")
#: Headless, as root, on a machine whose only network is loopback: no sandbox, no GPU, none of
#: Chromium's background connections.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic",
]  # fmt: skip


@pytest.fixture
def page() -> Iterator[Page]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Chromium is missing ({CHROMIUM}): apt-get install -y chromium "
            "(scripts/setup-pgadmin does it) or set NOTIFYAGENT_TEST_CHROMIUM",
            pytrace=False,
        )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1600, "height": 600})
            tab.set_default_timeout(30_000)
            yield tab
        finally:
            browser.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    where = Path(os.environ.get("NOTIFYAGENT_SCREENSHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def tree_entry(page: Page, label: str) -> Locator:
    """The Object Explorer row whose label is exactly ``label``."""
    name = page.locator(".file-name").get_by_text(label, exact=True)
    return page.locator(".file-entry", has=name).first


def open_node(page: Page, *path: str) -> Locator:
    """Expand the tree along ``path`` (a node already open stays open); select the last."""
    for label in path[:-1]:
        toggle = tree_entry(page, label).locator(".directory-toggle")
        if "open" not in (toggle.get_attribute("class") or ""):
            toggle.click()
    last = tree_entry(page, path[-1])
    last.click()
    return last


def dismiss_notifications(page: Page) -> None:
    """Close pgAdmin's toasts ("Server connected.") so that screenshots show the grid."""
    shown = page.locator("[data-test=notifier-message]").filter(visible=True)
    for close in shown.locator("button").all():
        close.click()
    expect(shown).to_have_count(0)


def grid_rows(page: Page, headers: list[str], first_cell: str) -> list[list[str]]:
    """The rows of the Statistics tab's grid, cell texts as rendered, once it shows these
    column headers and a first row whose first cell is ``first_cell``."""
    panel = page.locator("#rc-tabs-1-panel-id-statistics")
    expect(panel.locator(".pgrt-header-cell")).to_have_text(headers)
    rows = panel.locator(".pgrt-body .pgrt-row")
    expect(rows.first.locator(".pgrd-row-cell-content").first).to_have_text(first_cell)
    return [row.locator(".pgrd-row-cell-content").all_inner_texts() for row in rows.all()]


def test_object_explorer_shows_the_runs(
    page: Page, pgadmin: PgAdmin, stages: dict[str, Stage], shots: Path
) -> None:
    """The job's and the batch step's Statistics tabs render exactly the runs pgAdmin's
    endpoints return: run, status, times, duration; result and output for the step."""
    stage = stages["notifyagent"]
    db = stage.db.name
    steps = [
        pga.sql_step("a_refresh", "SELECT count(*) FROM pg_class", db),
        pga.batch_step("b_export", "echo 'exported 3 files'", db),
    ]
    start = stage.now() - timedelta(days=1)
    nightly = pga.schedule("nightly", start, minutes=[30], hours=[2])
    jid = stage.create_job(pga.job("refresh_reports", steps, [nightly]))["_id"]
    for runs in (1, 2):
        stage.run_now(jid)
        stage.wait_runs(jid, runs)
    runs_shown = stage.job_stats(jid)
    export = {s["jstname"]: s["jstid"] for s in stage.job(jid)["jsteps"]}["b_export"]
    export_shown = stage.step_stats(jid, export)

    page.goto(pgadmin.url)
    page.get_by_text("Loading pgAdmin").wait_for(state="hidden", timeout=60_000)
    open_node(page, "Servers", "notifyagent", "pgAgent Jobs", "refresh_reports")
    page.locator("#rc-tabs-1-tab-id-statistics").click()
    headers = ["Run", "Status", "Start time", "Duration", "End time"]
    assert grid_rows(page, headers, str(runs_shown[0]["Run"])) == [
        [str(r["Run"]), r["Status"], r["Start time"], r["Duration"], r["End time"]]
        for r in runs_shown
    ]
    dismiss_notifications(page)
    page.screenshot(path=shots / "pgadmin-job-statistics.png")

    open_node(page, "refresh_reports", "Steps", "b_export")
    headers = ["Run", "Status", "Result", "Start time", "End time", "Duration", "Output"]
    rendered = grid_rows(page, headers, str(export_shown[0]["Run"]))
    assert rendered == [
        [str(r["Run"]), r["Status"], str(r["Result"]), r["Start time"], r["End time"],
         r["Duration"], r["Output"].strip()]
        for r in export_shown
    ]  # fmt: skip
    assert rendered[0][-1] == "exported 3 files"
    dismiss_notifications(page)
    page.screenshot(path=shots / "pgadmin-step-statistics.png")
