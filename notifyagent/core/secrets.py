"""Passwords kept out of every text we log or store.

Pure, so that logging (obs) can scrub its records without depending on the database driver;
the connection-string side (:mod:`notifyagent.conninfo`) registers what it finds.
"""

from __future__ import annotations

import re
import threading

MASK = "********"

_secrets: set[str] = set()
#: the secrets, longest first (a password containing another is masked whole)
_longest_first: tuple[str, ...] = ()
# log records are scrubbed on whichever thread logs them
_secrets_lock = threading.Lock()
_KEYWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']+)")
_URL = re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)")


def add_secret(secret: str) -> None:
    global _longest_first
    if secret and secret not in _secrets:
        with _secrets_lock:
            _secrets.add(secret)
            _longest_first = tuple(sorted(_secrets, key=len, reverse=True))


def scrub(text: str) -> str:
    """Replace every known password in ``text``; also mask ``password=...`` and URL passwords.
    Called for every log line: the patterns only run where their marker occurs."""
    for secret in _longest_first:
        if secret in text:
            text = text.replace(secret, MASK)
    if "password" in text:
        text = _KEYWORD.sub(rf"\1{MASK}", text)
    if "://" in text:
        text = _URL.sub(rf"\1{MASK}\3", text)
    return text
