"""notifyagent: an event-driven, drop-in replacement for pgAgent."""

__version__ = "0.1.0"
