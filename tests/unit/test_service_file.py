"""The systemd unit ``scripts/notifyagent.service`` and the facts docs/deployment.md states.

The unit's required directives are checked everywhere, by reading the file; where
``systemd-analyze`` is installed the unit is also verified by systemd itself (with ExecStart
pointed at a program that exists). The deployment guide's config example must hold every
option and be accepted by the agent, and every metric name it uses must be one the agent
exposes.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from notifyagent.core import config
from notifyagent.obs.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "scripts" / "notifyagent.service"
DEPLOYMENT = ROOT / "docs" / "deployment.md"

Directives = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Directives:
    """``{section: {key: [values in order]}}`` of a systemd unit file (comments dropped,
    backslash continuations joined)."""
    sections: Directives = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith(("#", ";"))):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a KEY=VALUE line: {raw!r}"
        assert current is not None, f"directive outside a section: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


_SPAN_UNITS = {
    "us": 1e-6,
    "usec": 1e-6,
    "ms": 1e-3,
    "msec": 1e-3,
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}


def timespan(text: str) -> float:
    """Seconds of a systemd time span such as ``60``, ``90s``, ``1min 30s`` or ``infinity``."""
    text = text.strip()
    if text == "infinity":
        return math.inf
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text)
    assert parts, f"not a time span: {text!r}"
    assert re.fullmatch(r"(\s*\d+(?:\.\d+)?\s*[a-z]*)+\s*", text), f"not a time span: {text!r}"
    total = 0.0
    for number, unit in parts:
        assert unit in _SPAN_UNITS, f"unknown time unit {unit!r} in {text!r}"
        total += float(number) * _SPAN_UNITS[unit]
    return total


@pytest.fixture(scope="module")
def unit() -> Directives:
    return parse_unit(UNIT.read_text())


def one(unit: Directives, section: str, key: str) -> str:
    values = unit.get(section, {}).get(key)
    assert values, f"[{section}] {key}= is missing from {UNIT.name}"
    assert values[-1], f"[{section}] {key}= is empty in {UNIT.name}"
    return values[-1]


def test_timespan_parser() -> None:
    assert timespan("60") == 60
    assert timespan("90s") == 90
    assert timespan("1min 30s") == 90
    assert timespan("2m") == 120
    assert timespan("infinity") == math.inf
    with pytest.raises(AssertionError):
        timespan("soon")


def test_parse_unit_handles_comments_and_continuations() -> None:
    parsed = parse_unit("# c\n[Service]\n; c\nExecStart=/bin/a \\\n  --b\nUser=x\nUser=y\n")
    assert parsed == {"Service": {"ExecStart": ["/bin/a  --b"], "User": ["x", "y"]}}


def test_service_runs_serve_in_the_foreground_with_a_config_file(unit: Directives) -> None:
    assert one(unit, "Service", "Type") in ("simple", "exec")
    argv = one(unit, "Service", "ExecStart").split()
    assert Path(argv[0]).is_absolute(), "systemd needs an absolute ExecStart path"
    assert Path(argv[0]).name == "notifyagent"
    assert argv[1] == "serve"
    assert "--config" in argv
    assert argv[argv.index("--config") + 1].endswith(".toml")


def test_no_secret_on_the_command_line(unit: Directives) -> None:
    """`ps` shows the command line to every user: the DSN and password belong in the
    environment file."""
    exec_start = one(unit, "Service", "ExecStart")
    assert "--dsn" not in exec_start
    assert "password" not in exec_start.lower()
    assert "Environment" not in unit["Service"], "use EnvironmentFile=, not Environment="


def test_secrets_come_from_an_environment_file(unit: Directives) -> None:
    path = one(unit, "Service", "EnvironmentFile").removeprefix("-")
    assert Path(path).is_absolute()


def test_restarts_on_failure(unit: Directives) -> None:
    assert one(unit, "Service", "Restart") == "on-failure"
    assert timespan(one(unit, "Service", "RestartSec")) > 0


def test_reload_sends_sighup_to_the_main_process(unit: Directives) -> None:
    argv = one(unit, "Service", "ExecReload").split()
    assert Path(argv[0]).is_absolute()
    assert Path(argv[0]).name == "kill"
    signal = " ".join(argv[1:-1])
    assert signal in ("-HUP", "-SIGHUP", "-1", "-s HUP", "-s SIGHUP"), signal
    assert argv[-1] == "$MAINPID"


def test_runs_as_an_unprivileged_user(unit: Directives) -> None:
    user = one(unit, "Service", "User")
    assert user not in ("root", "0")
    assert one(unit, "Service", "Group") not in ("root", "0")
    assert "DynamicUser" not in unit["Service"], "batch steps need a stable user and home"


def test_stop_leaves_running_jobs_their_shutdown_timeout(unit: Directives) -> None:
    assert one(unit, "Service", "KillSignal") in ("SIGTERM", "TERM", "15")
    # control-group (the default) would SIGTERM the batch steps together with the agent
    assert one(unit, "Service", "KillMode") == "mixed"
    stop = timespan(one(unit, "Service", "TimeoutStopSec"))
    assert stop > config.Settings().shutdown_timeout
    # the cancel after the timeout (process group SIGTERM, SIGKILL) and the release/unregister
    # take up to about 20 s more
    assert stop >= config.Settings().shutdown_timeout + 20


def test_hardening_does_not_lock_out_batch_steps(unit: Directives) -> None:
    service = unit["Service"]
    assert one(unit, "Service", "NoNewPrivileges") == "true"
    assert one(unit, "Service", "PrivateTmp") == "true"
    # "full" keeps /var, /srv, /opt and homes writable; "strict" would make every path
    # read-only and break users' scripts
    assert one(unit, "Service", "ProtectSystem") in ("true", "full")
    for key in ("ProtectHome", "ReadOnlyPaths", "InaccessiblePaths", "DynamicUser"):
        assert key not in service, f"{key}= would break batch steps that use those paths"


def test_installed_for_multi_user_target(unit: Directives) -> None:
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    text = UNIT.read_text()
    # verify insists that the ExecStart program exists and is executable
    text, n = re.subn(
        r"^ExecStart=\S+", lambda _: f"ExecStart={sys.executable}", text, flags=re.MULTILINE
    )
    assert n == 1
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    proc = subprocess.run(
        [tool, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    output = proc.stdout + proc.stderr
    about_unit = [line for line in output.splitlines() if UNIT.name in line]
    assert proc.returncode == 0, output
    assert not about_unit, "\n".join(about_unit)


# -- docs/deployment.md -------------------------------------------------------------------


def test_deployment_config_example_has_every_option_and_is_valid(tmp_path: Path) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DEPLOYMENT.read_text(), flags=re.DOTALL)
    examples = [b for b in blocks if "max_concurrency" in b]
    assert len(examples) == 1, "one config file example with every option"
    path = tmp_path / "notifyagent.toml"
    path.write_text(examples[0])
    assert set(config.read_file(path)) == {o.name for o in config.OPTIONS}
    settings = config.resolve({}, {}, path)
    assert settings.max_concurrency == config.Settings().max_concurrency


def test_deployment_metric_names_exist() -> None:
    exposed: set[str] = set()
    for family in Metrics().registry.collect():
        if family.type == "counter":
            exposed.add(family.name + "_total")
        elif family.type == "histogram":
            exposed.update(family.name + s for s in ("", "_bucket", "_count", "_sum"))
        else:
            exposed.add(family.name)
    named = set(re.findall(r"\bnotifyagent_[a-z_]+[a-z]", DEPLOYMENT.read_text()))
    assert named, "the deployment guide names no metrics"
    assert named <= exposed, f"not exposed by notifyagent: {sorted(named - exposed)}"
    assert exposed - {n for n in exposed if n.endswith(("_bucket", "_count", "_sum"))} <= named, (
        "every metric is documented"
    )
