"""Cron syntax: ``*``, ``*/N`` and ``a-b/N`` in a field, whole crontab lines mapped exactly onto
pgAgent's arrays (or refused, saying why), and the cron form export writes where it is exact."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifyagent.core.cron import ORDER, parse_cron, render_cron
from notifyagent.core.fields import FIELDS, parse_field, render_field
from notifyagent.errors import ConfigError


def selected(field: str, values: list[bool]) -> list[int]:
    first = FIELDS[field][1]
    return [i + first for i, v in enumerate(values) if v]


@pytest.mark.parametrize(
    ("field", "text", "values"),
    [
        ("minutes", "*/15", [0, 15, 30, 45]),
        ("minutes", "5/20", [5, 25, 45]),
        ("minutes", "10-20/5", [10, 15, 20]),
        ("hours", "*/6", [0, 6, 12, 18]),
        ("hours", "8-17/3,23", [8, 11, 14, 17, 23]),
        ("monthdays", "*/10", [1, 11, 21, 31]),  # "last" is no day of */N
        ("months", "*/3", [1, 4, 7, 10]),
        ("months", "jan-dec/6", [1, 7]),
        ("weekdays", "*/2", [0, 2, 4, 6]),
        ("weekdays", "7", [0]),  # crontab's Sunday
        ("weekdays", "fri-7", [0, 5, 6]),
        ("weekdays", "MON-Fri", [1, 2, 3, 4, 5]),
        ("minutes", "*", []),  # any: pgAdmin's all-false array
        ("hours", "*,5", []),
    ],
)
def test_star_and_steps_in_a_field(field: str, text: str, values: list[int]) -> None:
    assert selected(field, parse_field(field, text)) == values


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("*/0", "minutes: the step in '*/0' is not a whole number of at least 1"),
        ("*/x", "minutes: the step in '*/x' is not a whole number of at least 1"),
        ("30-10/5", "minutes: range '30-10/5' runs backwards"),
        ("**", "minutes: '**' is not a number (allowed: 0-59)"),
    ],
)
def test_bad_steps_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_field("minutes", text)
    assert str(err.value) == message


def fields_of(line: str) -> dict[str, str]:
    return {name: render_field(name, values) for name, values in parse_cron(line).items()}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("*/15 8-17 * * mon-fri", ("0,15,30,45", "8-17", "", "", "mon-fri")),
        ("0 0 1 1 *", ("0", "0", "1", "jan", "")),
        ("30 4 1,15 * *", ("30", "4", "1,15", "", "")),
        ("0 12 * jul-aug 1-5", ("0", "12", "", "jul,aug", "mon-fri")),
        ("5 4 * * 7", ("5", "4", "", "", "sun")),
        ("0 9 */2 * *", ("0", "9", "1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31", "", "")),
        ("0 0 */2 * mon", ("0", "0", "1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31", "", "mon")),
        ("0 0 1-31 * mon", ("0", "0", "", "", "")),  # cron: either day rule = every day
        ("0 0 1 * 0-6", ("0", "0", "", "", "")),
        ("* * * * *", ("0-59", "", "", "", "")),  # pgAgent runs all-false arrays once only
        ("@hourly", ("0", "", "", "", "")),
        ("@daily", ("0", "0", "", "", "")),
        ("@weekly", ("0", "0", "", "", "sun")),
        ("@monthly", ("0", "0", "1", "", "")),
        ("@yearly", ("0", "0", "1", "jan", "")),
        ("  0   0 * * SUN ", ("0", "0", "", "", "sun")),
    ],
)
def test_cron_lines_map_onto_the_arrays(line: str, expected: tuple[str, ...]) -> None:
    assert fields_of(line) == dict(zip(ORDER, expected, strict=True))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "0 0 1 * mon",
            "day of month '1' and day of week 'mon' are both restricted: cron runs "
            "on days matching either, pgAgent only on days matching both; write two schedules",
        ),
        (
            "0 0 L * *",
            "day of month 'L': L, W, # and ? (last, nearest weekday, nth weekday) "
            "cannot be expressed in a pgAgent schedule",
        ),
        ("0 0 15W * *", "day of month '15W': L, W, # and ?"),
        ("0 0 * * 5L", "day of week '5L': L, W, # and ?"),
        ("0 0 * * fri#2", "day of week 'fri#2': L, W, # and ?"),
        ("0 0 ? * *", "day of month '?': L, W, # and ?"),
        ("@reboot", "@reboot is not a time: pgAgent schedules have no start-up run"),
        ("@every 5m", "unknown '@every 5m'"),
        ("0 * * * * *", "6 fields: a seconds (or year) field cannot be expressed"),
        ("0 0 0 * * * 2030", "7 fields: a seconds (or year) field cannot be expressed"),
        (
            "1 2 3",
            "'1 2 3' has 3 fields; a cron line has 5: minute hour day-of-month month day-of-week",
        ),
        ("", "'' has 0 fields"),
        ("60 * * * *", "minute: 60 is out of range 0-59"),
        ("0 24 * * *", "hour: 24 is out of range 0-23"),
        ("0 0 32 * *", "day of month '32': days are 1-31 in a cron line"),
        ("0 0 last * *", "day of month 'last': days are 1-31 in a cron line"),
        ("0 0 * 13 *", "month: 13 is out of range 1-12"),
        ("0 0 * * 8", "day of week: 8 is out of range 0-6"),
        ("0 0 * foo *", "month: 'foo' is not a number or a name"),
        ("*/0 * * * *", "minute: the step in '*/0' is not a whole number of at least 1"),
    ],
)
def test_what_pgagent_cannot_express_is_refused(line: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_cron(line)
    assert str(err.value).startswith("cron: " + message), str(err.value)


@pytest.mark.parametrize(
    "line",
    ["*/15 8-17 * * mon-fri", "0 0 1 jan *", "* * * * *", "0 */6 * * *", "5,35 * 1,15 * *"],
)
def test_exact_lines_render_back(line: str) -> None:
    assert render_cron(parse_cron(line)) == line


def test_no_cron_form_where_it_would_not_be_exact() -> None:
    last = {name: parse_field(name, "") for name in ORDER} | {
        "minutes": parse_field("minutes", "0"),
        "monthdays": parse_field("monthdays", "last"),
    }
    assert render_cron(last) is None
    both = last | {
        "monthdays": parse_field("monthdays", "13"),
        "weekdays": parse_field("weekdays", "fri"),
    }
    assert render_cron(both) is None  # pgAgent: Friday the 13th; cron would OR them
    nothing = {name: parse_field(name, "") for name in ORDER}
    assert render_cron(nothing) is None  # pgAgent runs it once; no cron line says that


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_a_rendered_line_always_means_the_same_arrays(data: st.DataObject) -> None:
    arrays = {
        name: data.draw(st.lists(st.booleans(), min_size=FIELDS[name][0], max_size=FIELDS[name][0]))
        for name in ORDER
    }
    line = render_cron(arrays)
    if line is not None:
        assert parse_cron(line) == arrays
