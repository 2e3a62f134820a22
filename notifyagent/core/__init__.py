"""The pure core: no I/O, no event loop, no logging (tests/unit/test_core_is_pure.py).

The schedule engine (:mod:`.schedule`) and the field grammar users write (:mod:`.fields`); the
agent's bookkeeping (:mod:`.timetable`, the due-:mod:`.queue`); per-job policies
(:mod:`.policy`) and retry delays (:mod:`.backoff`); the settings (:mod:`.config`).
"""
