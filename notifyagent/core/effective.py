"""The policy a job runs with: its ``notifyagent.job_policy`` row merged with the annotations
in pgAdmin's fields (:mod:`notifyagent.core.annotations`), where each value came from, and the
step settings (timeouts, parallel groups) the run follows.

Precedence per key: the row's value where it is not the column's default, then the
annotation, then the default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar

from notifyagent.core.annotations import Annotations, StepSettings
from notifyagent.core.policy import DEFAULT, POLICY_KEYS, Policy


class _HasId(Protocol):
    @property
    def id(self) -> int: ...


_T = TypeVar("_T", bound=_HasId)


class Source(StrEnum):
    ROW = "row"
    ANNOTATION = "annotation"
    DEFAULT = "default"


@dataclass(frozen=True)
class Effective:
    """The policy a job runs with, where each value came from, and its step settings."""

    policy: Policy
    sources: Mapping[str, Source]
    steps: Mapping[int, StepSettings]
    annotations: Annotations


def effective(row: Policy | None, annotations: Annotations) -> Effective:
    """Per key: the row's value where it is not the column's default, else the annotation's,
    else the row's (holding the default) or the default. A row's ``step_timeout`` also wins
    over steps' own timeouts."""
    values: dict[str, object] = {}
    sources: dict[str, Source] = {}
    for key in POLICY_KEYS:
        default = getattr(DEFAULT, key)
        if row is not None and getattr(row, key) != default:
            values[key], sources[key] = getattr(row, key), Source.ROW
        elif key in annotations.policy:
            values[key], sources[key] = annotations.policy[key], Source.ANNOTATION
        else:
            values[key] = default
            sources[key] = Source.ROW if row is not None else Source.DEFAULT
    policy = dataclasses.replace(DEFAULT, **values)  # type: ignore[arg-type]
    steps = dict(annotations.steps)
    if sources["step_timeout"] is Source.ROW and policy.step_timeout is not None:
        steps = {i: dataclasses.replace(s, step_timeout=None) for i, s in steps.items()}
    return Effective(policy, sources, steps, annotations)


def origin(source: Source) -> str:
    """A source as a run's output names it."""
    return "notifyagent.job_policy" if source is Source.ROW else f"{source} in pgAdmin's fields"


def step_timeout(eff: Effective, step_id: int) -> tuple[float | None, str]:
    """The timeout (seconds) of one step and where it came from: the step's own annotation,
    else the job's policy."""
    settings = eff.steps.get(step_id)
    if settings is not None and settings.step_timeout is not None:
        return settings.step_timeout.total_seconds(), "step annotation in pgAdmin's fields"
    return eff.policy.step_timeout_s, origin(eff.sources["step_timeout"])


def parallel_groups(steps: Sequence[_T], settings: Mapping[int, StepSettings]) -> list[list[_T]]:
    """Steps in order, a step marked parallel joining the group of the step before it (the
    first step always starts a group)."""
    groups: list[list[_T]] = []
    for step in steps:
        s = settings.get(step.id)
        if groups and s is not None and s.parallel:
            groups[-1].append(step)
        else:
            groups.append([step])
    return groups
