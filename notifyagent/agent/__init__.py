"""The agent (``notifyagent serve``): listens for changes, keeps the due-queue, claims and
runs jobs on time. :mod:`notifyagent.agent.service` puts the parts together."""

from notifyagent.agent.service import Agent

__all__ = ["Agent"]
