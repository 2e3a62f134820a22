"""Test support: the pgagent tables in memory (``MemoryStore``), a fake clock, and an agent
made of the real scheduler and runner on them (``MemoryAgent``), so scheduling behaviour can
be tested in milliseconds without a server."""

from notifyagent.testing.clock import FakeClock
from notifyagent.testing.harness import MemoryAgent, MemorySteps, step, steps
from notifyagent.testing.memory import MemoryStore

__all__ = ["FakeClock", "MemoryAgent", "MemorySteps", "MemoryStore", "step", "steps"]
