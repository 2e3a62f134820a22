"""Passwords kept out of every text we log or store.

Pure, so that logging (obs) can scrub its records without depending on the database driver;
the connection-string side (:mod:`notifyagent.conninfo`) registers what it finds.
"""

from __future__ import annotations

import re
import threading

MASK = "********"

_secrets: set[str] = set()
# log records are scrubbed on whichever thread logs them
_secrets_lock = threading.Lock()


def add_secret(secret: str) -> None:
    if secret:
        with _secrets_lock:
            _secrets.add(secret)


def scrub(text: str) -> str:
    """Replace every known password in ``text``; also mask ``password=...`` and URL passwords."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    text = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']+)", rf"\1{MASK}", text)
    return re.sub(r"(://[^:/@\s]*:)([^@\s]*)(@)", rf"\1{MASK}\3", text)
