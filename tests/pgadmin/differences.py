"""What pgAdmin shows differently under pgAgent and under notifyagent: each is a pgAgent bug
that notifyagent fixes. Every key is a row of the pgAdmin table in docs/compatibility.md
(``test_docs.py`` checks it), and the tests assert both sides where they meet it."""

from __future__ import annotations

DIFFERENCES = {
    "stale-error-text": (
        "a successful SQL step's Output in its Statistics tab: pgAgent 4.2.2 shows the last "
        "error of the pooled connection it ran on (fixed in pgAgent 4.2.3), notifyagent ''"
    ),
    "impossible-date-save": (
        "saving a schedule whose next match pgAgent's function builds as an impossible date "
        "(the 31st from a 30-day month): pgAdmin shows the error 'date/time field value out "
        "of range' under pgAgent; under notifyagent it saves and Next run shows the 31st of "
        "the next month that has one"
    ),
}
