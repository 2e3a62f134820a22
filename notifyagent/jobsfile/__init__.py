"""Jobs as code: a TOML jobs file synced into the pgagent tables (``apply``) and written from
them (``export``).

The file is a list of ``[[jobs]]``, each with ``[[jobs.steps]]`` and ``[[jobs.schedules]]`` and
optionally a ``[jobs.policy]`` (a row of ``notifyagent.job_policy``; a job without one has no
row, which is pgAgent's behaviour); ``notifyagent/examples/jobs.toml`` shows every field. Jobs
are matched by name; the steps and schedules of a job by their name too; a job, step or
schedule whose name occurs several times is matched by its position among those of that name
(ordered by id in the database). Jobs whose name is not in the file (made in pgAdmin, say) are
left alone unless ``prune`` is asked for.

Layers, one module each: :mod:`.spec` the dataclasses (a job's policy is the agent's own
:class:`notifyagent.core.policy.Policy`); :mod:`.parse` reads and validates a
file (pure; typed values with :mod:`.values`, durations with :mod:`.durations`); :mod:`.diff`
compares the database's jobs with the file's and makes a :class:`~.plan.Plan` (pure), whose
text :mod:`.plan` renders; :mod:`.toml` writes a file (pure); :mod:`.database` does the I/O
(:func:`apply_file`, :func:`export_jobs`). The schedule fields' syntax is
:mod:`notifyagent.core.fields`, shared with ``notifyagent next``.
"""

from notifyagent.core.fields import render_field
from notifyagent.jobsfile.database import apply_file, export_jobs
from notifyagent.jobsfile.diff import diff
from notifyagent.jobsfile.durations import parse_duration, render_duration
from notifyagent.jobsfile.parse import check_classes, check_policy_table, load, loads
from notifyagent.jobsfile.spec import (
    ON_ERROR,
    ExceptionSpec,
    JobSpec,
    ScheduleSpec,
    StepSpec,
)
from notifyagent.jobsfile.toml import render_jobs, toml_string

__all__ = [
    "ON_ERROR",
    "ExceptionSpec",
    "JobSpec",
    "ScheduleSpec",
    "StepSpec",
    "apply_file",
    "check_classes",
    "check_policy_table",
    "diff",
    "export_jobs",
    "load",
    "loads",
    "parse_duration",
    "render_duration",
    "render_field",
    "render_jobs",
    "toml_string",
]
