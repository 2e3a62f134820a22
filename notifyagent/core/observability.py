"""The values of the observability options: log levels and the metrics address.

Pure, so that the configuration (core) can validate them without loading loguru or
prometheus_client, and :mod:`notifyagent.obs` can use the same definitions.
"""

from __future__ import annotations

LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


def parse_address(text: str) -> tuple[str, int]:
    """``PORT`` (loopback), ``HOST:PORT`` or ``[IPv6]:PORT``."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("PORT or HOST:PORT with a port from 1 to 65535")
    return host, int(port)
