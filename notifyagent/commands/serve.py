"""``notifyagent serve``: the agent, until SIGTERM/SIGINT (SIGHUP reloads the settings)."""

from __future__ import annotations

from collections.abc import Callable

from notifyagent.agent import Agent
from notifyagent.core.config import Settings


async def serve(settings: Settings, reload: Callable[[], Settings]) -> int:
    return await Agent(settings, reload=reload).serve()
