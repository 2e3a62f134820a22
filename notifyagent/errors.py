"""Errors that end a command, each with its own exit code and a message that says how to fix it."""

from __future__ import annotations


class NotifyAgentError(Exception):
    """Base class: ``str(err)`` is shown to the user as is; ``exit_code`` is the exit status."""

    exit_code = 1


class ConnectError(NotifyAgentError):
    """The database cannot be reached or refused the login."""

    exit_code = 3


class ExtensionMissing(NotifyAgentError):
    """The database has no ``pgagent`` schema."""

    exit_code = 4


class SchemaVersionMismatch(NotifyAgentError):
    """``pgagent.pgagent_schema_version()`` is missing or is not 4."""

    exit_code = 5


class ConfigError(NotifyAgentError):
    """A setting or input file is invalid."""

    exit_code = 2
