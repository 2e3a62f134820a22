"""Option precedence and validation (no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifyagent.core.config import Settings, config_path, diff, read_file, resolve
from notifyagent.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "notifyagent.toml"
    path.write_text(text)
    return path


def test_precedence_cli_env_file_default(tmp_path: Path) -> None:
    path = write(tmp_path, 'max_concurrency = 4\nshutdown_timeout = 5\nstation = "file"\n')
    env = {"NOTIFYAGENT_MAX_CONCURRENCY": "8", "NOTIFYAGENT_STATION": "env"}
    s = resolve({"max_concurrency": "16"}, env, path)
    assert s.max_concurrency == 16  # command line
    assert s.station == "env"  # environment beats the file
    assert s.shutdown_timeout == 5.0  # file beats the default
    assert s.liveness_interval == 30.0  # default
    assert resolve({}, env, path).max_concurrency == 8
    assert resolve({}, {}, path).max_concurrency == 4
    assert resolve({}, {}, None).max_concurrency == 32


def test_config_file_named_by_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, 'station = "from-file"\n')
    env = {"NOTIFYAGENT_CONFIG": str(path)}
    assert config_path(None, env) == path
    assert resolve({}, env, config_path(None, env)).station == "from-file"
    assert config_path("given.toml", env) == Path("given.toml")  # --config wins
    assert config_path(None, {}) is None


def test_dashes_and_booleans(tmp_path: Path) -> None:
    path = write(tmp_path, 'max-output = 100\nbatch_steps = false\ntimezone = "Europe/Berlin"\n')
    s = resolve({}, {}, path)
    assert (s.max_output, s.batch_steps, s.timezone) == (100, False, "Europe/Berlin")
    assert resolve({}, {"NOTIFYAGENT_BATCH_STEPS": "no"}, None).batch_steps is False
    assert (
        resolve({"batch_steps": False}, {"NOTIFYAGENT_BATCH_STEPS": "yes"}, None).batch_steps
        is False
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "max_concurrency = 0",
            "key 'max_concurrency': 0 is not allowed; expected an integer >= 1",
        ),
        ('max_concurrency = "many"', "'many' is not allowed; expected an integer >= 1"),
        ("shutdown_timeout = -1", "-1 is not allowed; expected a number of seconds >= 0"),
        ('timezone = "Mars/Olympus"', "expected an IANA time zone name"),
        ('log_level = "LOUD"', "expected one of TRACE, DEBUG"),
        ("batch_steps = 3", "expected true or false"),
        ("concurrency = 3", "unknown key 'concurrency'; allowed: dsn, station"),
        ("max_concurrency = ", "not valid TOML"),
    ],
)
def test_validation_names_key_value_and_allowed(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text + "\n")
    with pytest.raises(ConfigError) as err:
        resolve({}, {}, path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="environment NOTIFYAGENT_MAX_OUTPUT: 'x' is not"):
        resolve({}, {"NOTIFYAGENT_MAX_OUTPUT": "x"}, None)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        read_file(Path("/nonexistent/notifyagent.toml"))


def test_diff_lists_changed_options() -> None:
    old = Settings(dsn="a", station="s")
    new = Settings(dsn="a", station="s", max_concurrency=2, log_level="DEBUG")
    assert diff(old, new) == {"max_concurrency": (32, 2), "log_level": ("INFO", "DEBUG")}
    assert diff(old, old) == {}
