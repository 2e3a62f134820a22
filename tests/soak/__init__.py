"""The chaos soak (``scripts/soak``): three agents, a primary and a standby, about a thousand
jobs and an hour of random faults; afterwards the database and the agents' logs must show
nothing lost, doubled, early or stuck. docs/operations.md has the results."""
