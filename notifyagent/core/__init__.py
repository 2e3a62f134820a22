"""The pure core: no I/O."""
