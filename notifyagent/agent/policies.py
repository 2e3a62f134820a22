"""The policies the agent runs jobs by: ``notifyagent.job_policy`` rows merged with the
annotations in pgAdmin's fields (notifyagent.core.annotations), reloaded on the same
notifications. Annotation problems are logged once per change, not once per reload."""

from __future__ import annotations

from collections.abc import Sequence

from loguru import logger

from notifyagent.core import secrets
from notifyagent.core.annotations import NONE, Annotations, Severity, parse
from notifyagent.core.effective import Effective, effective
from notifyagent.core.policy import DEFAULT, Policy
from notifyagent.core.ports import Store
from notifyagent.obs.metrics import Metrics

_PLAIN = effective(None, NONE)


class PolicyBook:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._rows: dict[int, Policy] = {}
        self._annotations: dict[int, Annotations] = {}
        self._plans: dict[int, Effective] = {}
        #: the effective policies (what the decisions read)
        self.policies: dict[int, Policy] = {}

    def policy(self, job_id: int) -> Policy:
        return self.policies.get(job_id, DEFAULT)

    def plan(self, job_id: int) -> Effective:
        return self._plans.get(job_id, _PLAIN)

    async def load(self, store: Store, ids: Sequence[int] | None) -> None:
        """Reload the rows and annotations of ``ids`` (of every job when None)."""
        rows = await store.policies(ids)
        texts = await store.descriptions(ids)
        names = set(self._rows) | set(self._annotations) if ids is None else set(ids)
        if ids is None:
            self._rows.clear()
        for job_id in names:
            self._rows.pop(job_id, None)
        self._rows.update(rows)
        for job_id in names | set(texts):
            old = self._annotations.pop(job_id, NONE)
            new = parse(texts[job_id]) if job_id in texts else NONE
            if new != old:
                _report(job_id, new, problems_changed=new.problems != old.problems)
            if new != NONE:
                self._annotations[job_id] = new
            _hide_passwords(new)
        for job_id in names | set(rows) | set(texts):
            self._plans.pop(job_id, None)
            self.policies.pop(job_id, None)
            if job_id in self._rows or job_id in self._annotations:
                plan = effective(self._rows.get(job_id), self._annotations.get(job_id, NONE))
                self._plans[job_id], self.policies[job_id] = plan, plan.policy
        self._metrics.annotation_errors.set(sum(a.errors for a in self._annotations.values()))


def _report(job_id: int, found: Annotations, *, problems_changed: bool) -> None:
    """Each problem of a job's annotations, once per change of them."""
    for p in found.problems if problems_changed else ():
        level = "INFO" if p.severity is Severity.NOTE else "WARNING"
        ignored = " (ignored)" if p.severity is Severity.ERROR else ""
        logger.bind(job_id=job_id).log(
            level, "job {}: annotation {}: {}{}", job_id, p.severity, p, ignored
        )
    settings = len(found.policy) + len(found.email) + len(found.steps)
    logger.bind(job_id=job_id).info(
        "job {}: annotations read: {} setting(s), {} problem(s)",
        job_id,
        settings,
        len(found.problems),
    )


def _hide_passwords(found: Annotations) -> None:
    """A password in a step's annotations is never logged or stored in an output."""
    for settings in found.steps.values():
        for key, value in settings.connection:
            if key == "password":
                secrets.add_secret(value)
