"""Connection strings: where the DSN comes from, what we add to it, and how it is shown.

Passwords never leave this module in clear text: every password we see is registered as a
secret (:mod:`notifyagent.core.secrets`), and :func:`scrub` removes it from any text before
it is logged or stored.
"""

from __future__ import annotations

import os
import re

from psycopg import conninfo as pgconninfo

from notifyagent.core.secrets import MASK, add_secret
from notifyagent.core.secrets import scrub as scrub  # re-exported: callers use conninfo.scrub

#: TCP keepalives (and a connect timeout) for the agent's own connections, unless the DSN
#: says otherwise. Without them a half-open link is noticed only after the kernel default of
#: about two hours, and a connect through a stalled path never returns.
KEEPALIVES: dict[str, str] = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "20000",
    "connect_timeout": "10",
}


def resolve_dsn(cli_value: str | None) -> str:
    """``--dsn``, else ``NOTIFYAGENT_DSN``, else "" (libpq then reads the ``PG*`` variables)."""
    dsn = cli_value or os.environ.get("NOTIFYAGENT_DSN", "")
    register_secrets(dsn)
    return dsn


def parse(dsn: str) -> dict[str, str]:
    """Parse a ``key=value`` string or a ``postgresql://`` URL (raises ``ProgrammingError``)."""
    return {k: str(v) for k, v in pgconninfo.conninfo_to_dict(dsn).items()}


def register_secrets(dsn: str) -> None:
    """Remember the password of ``dsn`` (if any) and ``$PGPASSWORD`` so that :func:`scrub`
    can hide them."""
    if pw := os.environ.get("PGPASSWORD"):
        add_secret(pw)
    try:
        params = parse(dsn)
    except Exception:
        # An unparsable string may still hold a password: hide every password=... value.
        for m in re.finditer(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", dsn):
            add_secret(m.group(1).strip("'"))
        for m in re.finditer(r"://[^:/@]*:([^@]*)@", dsn):
            add_secret(m.group(1))
        return
    if pw := params.get("password"):
        add_secret(pw)


def display(dsn: str) -> str:
    """A readable form of ``dsn`` without its password, for logs and reports."""
    try:
        params = parse(dsn)
    except Exception:
        return scrub(dsn)
    if "password" in params:
        params["password"] = MASK
    if not params:
        return "(libpq defaults / PG* environment)"
    return pgconninfo.make_conninfo("", **params)


def with_params(dsn: str, **params: str) -> str:
    """``dsn`` with ``params`` set (later values win), as a ``key=value`` string."""
    return pgconninfo.make_conninfo(dsn, **params)


def with_keepalives(dsn: str) -> str:
    """Add :data:`KEEPALIVES` for every keyword the DSN does not set itself."""
    given = parse(dsn)
    extra = {k: v for k, v in KEEPALIVES.items() if k not in given}
    if given.get("keepalives") == "0":
        extra.pop("tcp_user_timeout", None)
    return with_params(dsn, **extra)
