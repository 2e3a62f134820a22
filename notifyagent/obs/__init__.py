"""Observability: logging (:mod:`.log`) and Prometheus metrics with the health endpoints
(:mod:`.metrics`). Used by the agent and the commands; imports only the core."""
