"""``notifyagent alert test [--to URL]``: a sample alert to each destination, so an operator
can check one before a job fails. Destinations are printed as ``scheme://host`` only."""

from __future__ import annotations

from collections.abc import Sequence

from notifyagent.agent.alerts import send_test
from notifyagent.core.alerts import parse_urls, redact
from notifyagent.core.config import Settings
from notifyagent.errors import ConfigError
from notifyagent.obs.metrics import Metrics


async def alert_test(settings: Settings, to: Sequence[str] | None) -> int:
    """Exit 0 when every destination accepted the alert, 1 otherwise."""
    try:
        urls = parse_urls(to) if to else settings.alert_urls
    except ValueError as err:
        raise ConfigError(f"--to: {err}") from None
    if not urls:
        raise ConfigError(
            "no destination: give --to URL (an Apprise URL such as json://host/path or "
            "mailtos://user:password@smtp.example.com?to=ops@example.com), or set alert_urls"
        )
    results = await send_test(settings, urls, Metrics())
    for url, why in zip(urls, results, strict=True):
        print(f"{redact(url)}: {'sent' if why is None else 'FAILED: ' + why}")
    return 0 if all(why is None for why in results) else 1
