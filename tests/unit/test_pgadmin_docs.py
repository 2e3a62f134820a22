"""The docs stay true to the pgAdmin tier (tests/pgadmin): docs/compatibility.md lists
exactly the differences the tier asserts, and the README shows screenshots that exist."""

from __future__ import annotations

import re
from pathlib import Path

from tests.pgadmin.differences import DIFFERENCES

ROOT = Path(__file__).resolve().parents[2]


def test_compatibility_lists_exactly_the_differences_pgadmin_shows() -> None:
    doc = (ROOT / "docs" / "compatibility.md").read_text()
    section = doc.split("## pgAdmin 4 itself, against both agents", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, re.M)) == set(DIFFERENCES)


def test_readme_shows_the_committed_screenshots() -> None:
    images = re.findall(
        r"!\[[^]]+\]\((docs/images/[\w.-]+\.png)\)", (ROOT / "README.md").read_text()
    )
    assert len(images) >= 1
    assert all((ROOT / image).stat().st_size < 200_000 for image in images)
