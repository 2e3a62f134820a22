"""Running one job step: SQL on a (cached) connection, or a batch script in a subprocess.

Semantics follow pgAgent (docs/compatibility.md §3.5, §3.6): SQL runs through the simple query
protocol (several statements, one implicit transaction), ``result`` is the row count of the
last statement or -1 on error, the output is '' or the server's error, after the step's
NOTICE/WARNING messages (an extension: pgAgent drops them); a batch step is a
0700 script in a private temp dir run by ``/bin/sh``, ``result`` is its exit code (-1 when
killed by a signal), the output is stdout then stderr after pgAgent's separator.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import tempfile
from pathlib import Path

import psycopg
from loguru import logger
from psycopg import pq

from notifyagent import conninfo
from notifyagent.agent.step_connections import StepConnections
from notifyagent.core.model import Outcome, Step, StepKind
from notifyagent.db.connect import describe_connect_error

NO_CONNECTION = "Couldn't get a connection to the database!"
#: Seconds idle after which :meth:`StepRunner.warm` sends a connection an empty query.
WARM_AFTER = 0.02
#: Connection slots left to the agent's own pool and listener (see limit_connections).
RESERVE = 12
UNLIMITED = 1 << 30
#: Distinct step targets remembered (see :meth:`StepRunner.target`).
MAX_TARGETS = 1000
SCRIPT_ERROR = "\nScript Error: \n"


def clean_text(data: bytes) -> str:
    """Decode output for a text column: invalid UTF-8 replaced, NUL bytes removed."""
    return data.decode("utf-8", errors="replace").replace("\x00", "")


def truncated(text: str, limit: int, dropped: int = 0) -> str:
    """``text`` cut to ``limit`` characters, with a marker saying how much was not stored."""
    if len(text) > limit:
        dropped += len(text.encode()) - len(text[:limit].encode())
        text = text[:limit]
    if dropped:
        text += f"\n[notifyagent: output truncated, {dropped} more bytes not stored (--max-output)]"
    return text


async def _read_capped(stream: asyncio.StreamReader | None, limit: int) -> tuple[bytes, int]:
    """Read a pipe to EOF, keeping the first ``limit`` bytes and counting the rest."""
    if stream is None:
        return b"", 0
    kept = bytearray()
    dropped = 0
    while chunk := await stream.read(65536):
        room = limit - len(kept)
        if room > 0:
            kept += chunk[:room]
        dropped += max(0, len(chunk) - max(room, 0))
    return bytes(kept), dropped


class Notices:
    """The NOTICE / WARNING / INFO messages of one SQL step, as psql shows them
    (``NOTICE:  text``, then DETAIL and HINT lines); past ``limit`` characters only counted,
    so a step raising millions of notices cannot fill the agent's memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lines: list[str] = []
        self._size = 0
        self.dropped = 0

    def add(self, diag: psycopg.errors.Diagnostic) -> None:
        text = f"{diag.severity_nonlocalized or diag.severity}:  {diag.message_primary or ''}"
        if diag.message_detail:
            text += f"\nDETAIL:  {diag.message_detail}"
        if diag.message_hint:
            text += f"\nHINT:  {diag.message_hint}"
        if self._size >= self.limit:
            self.dropped += len(text.encode()) + 1
            return
        self._lines.append(text)
        self._size += len(text) + 1

    def text(self) -> str:
        return "\n".join(self._lines)


class StepRunner:
    """Runs steps; keeps idle SQL connections per target so a run opens none."""

    def __init__(self, agent_dsn: str, *, max_output: int, batch_steps: bool, max_idle: int):
        self.agent_dsn = agent_dsn
        self.max_output = max_output
        self.batch_steps = batch_steps
        #: no cap until the agent knows what the server allows (limit_connections)
        self.conns = StepConnections(max_idle, capacity=UNLIMITED)
        self._targets: dict[tuple[str, str, tuple[tuple[str, str], ...]], str] = {}
        #: the target the last SQL step ran on, and the targets being warmed right now
        self._recent: str | None = None
        self._warming: dict[str, asyncio.Future[None]] = {}

    async def run(self, job_id: int, step: Step) -> Outcome:
        if step.kind is StepKind.SQL:
            return await self.run_sql(step)
        return await self.run_batch(job_id, step)

    def limit_connections(self, room: int) -> None:
        """Open at most the step connections open now plus ``room``, less what the agent's own
        pool may still open (RESERVE); the runs (max_concurrency) may be fewer."""
        self.conns.set_capacity(self.conns.open + room - RESERVE)

    async def close(self) -> None:
        await self.conns.close_all()

    # -- SQL ------------------------------------------------------------------------------

    def target(self, step: Step) -> str:
        """``jstconnstr`` on its own when set, else the agent's DSN with ``dbname=jstdbname``;
        then the step's annotated keywords (host, dbname, user, password) over either.
        Remembered per combination: parsing a DSN costs ~0.1 ms on the way to the step."""
        key = (step.connstr, step.dbname, step.params)
        target = self._targets.get(key)
        if target is None:
            if len(self._targets) >= MAX_TARGETS:
                self._targets.clear()
            target = self._targets[key] = self._target(step)
        return target

    def _target(self, step: Step) -> str:
        if step.connstr:
            conninfo.register_secrets(step.connstr)
            target = step.connstr
        else:
            target = conninfo.with_params(self.agent_dsn, dbname=step.dbname)
        if step.params:
            target = conninfo.with_params(target, **dict(step.params))
            conninfo.register_secrets(target)
        return target

    async def warm(self, step: Step | None = None) -> None:
        """Open or wake the connection an SQL step will take next (the top of the idle list):
        a server process that slept for a while answers its first query ~0.5 ms slower, a
        new connection takes several ms. Called while a run waits for its due time, and,
        without a step, for the target the last SQL step used while a Run now is claimed."""
        if step is not None and step.kind is not StepKind.SQL:
            return
        target = self._recent if step is None else self.target(step)
        if target is None or target in self._warming:
            return
        self._warming[target] = done = asyncio.get_running_loop().create_future()
        try:
            self.conns.keep(target, await self.conns.acquire(target, WARM_AFTER))
        except (psycopg.Error, OSError, ValueError):
            pass
        finally:
            del self._warming[target]
            done.set_result(None)

    async def run_sql(self, step: Step) -> Outcome:
        target = self._recent = self.target(step)
        if (warming := self._warming.get(target)) is not None:
            await asyncio.shield(warming)
        try:
            conn = await self.conns.acquire(target)
        except (psycopg.Error, OSError, ValueError) as err:
            detail = describe_connect_error(target, err)
            logger.warning("step {} ({}): {}", step.id, step.name, detail)
            return Outcome(False, -1, f"{NO_CONNECTION}\n{detail}")
        notices = Notices(self.max_output)
        conn.add_notice_handler(notices.add)
        try:
            cur = conn.cursor()
            await cur.execute(step.code.encode())
            while cur.nextset():
                pass
            pgres = cur.pgresult
            tuples = pgres.command_tuples if pgres is not None else None
            if pgres is not None and pgres.status == pq.ExecStatus.EMPTY_QUERY:
                return Outcome(False, -1, "empty query: the step has no code")
            return Outcome(True, tuples or 0, self._output(notices, ""))
        except psycopg.Error as err:
            message = _error_text(err)
            if conn.broken:
                message = f"{message}\n(the connection to the database was lost)"
            return Outcome(False, -1, self._output(notices, message))
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.cancel_safe(), 5)
            await conn.close()
            raise
        finally:
            conn.remove_notice_handler(notices.add)
            await self.conns.done(target, conn)

    def _output(self, notices: Notices, error: str) -> str:
        """The notices in the order they came, then the error; within --max-output."""
        text = "\n".join(x for x in (notices.text(), error) if x)
        return truncated(conninfo.scrub(text), self.max_output, notices.dropped)

    # -- batch ----------------------------------------------------------------------------

    async def run_batch(self, job_id: int, step: Step) -> Outcome:
        if not self.batch_steps:
            return Outcome(
                False,
                -1,
                "batch steps are disabled on this agent (--no-batch-steps): the step was not run",
            )
        tmpdir = tempfile.mkdtemp(prefix=f"pga_{job_id}_{step.id}_")
        try:
            script = Path(tmpdir) / f"{job_id}_{step.id}.scr"
            script.write_text(step.code.replace("\r\n", "\n"))
            script.chmod(0o700)
            return await self._exec(script)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    async def _exec(self, script: Path) -> Outcome:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            shlex.quote(str(script)),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            (out, out_dropped), (err, err_dropped) = await asyncio.gather(
                _read_capped(proc.stdout, self.max_output),
                _read_capped(proc.stderr, self.max_output),
            )
            code = await proc.wait()
        except asyncio.CancelledError:
            await _kill_group(proc)
            raise
        output = clean_text(out)
        if err or err_dropped:
            output += SCRIPT_ERROR + clean_text(err) + "\n"
        return Outcome(
            code == 0,
            code if code >= 0 else -1,
            truncated(output, self.max_output, out_dropped + err_dropped),
        )


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """Stop the script and everything it started (its own process group)."""
    for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), grace)
            break
        except TimeoutError:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _error_text(err: psycopg.Error) -> str:
    """The server's error as libpq prints it (``ERROR:  ...``), like pgAgent's jsloutput."""
    pgres = err.pgresult
    if pgres is not None and pgres.error_message:
        return str(pgres.error_message.decode("utf-8", errors="replace")).rstrip("\n")
    return str(err)
