"""One session of a command: any program, run under longrun's time box, sandbox, meter and judge.

The command is given the contract (`contract`): the resume context in a file, where to leave its
handoff and its event lines, its wrap-up time and deadline, and `ANTHROPIC_BASE_URL` pointing at
the metering proxy (`meter`). While it runs, its lines (`lines`) and output (`output`) become the
session's events, and the session watches the clock, the stop flag and the budget. At wrap-up it
is sent SIGUSR1; at its deadline (or when the session must stop) SIGTERM, then SIGKILL to all it
started (`process`). Its exit code says how the session ended: 0 finished, 75 rate-limited
(until the handoff's `retry_at`), anything else an error with the last lines of its stderr.
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from longrun.evaluators.command import clean_env
from longrun.scheduler.guards.policy import ASK_HUMAN
from longrun.scheduler.guards.usage_limits import reset_from_headers
from longrun.scheduler.spec.worker import WorkerSpec
from longrun.scheduler.workers.base import (
    EndReason,
    Reporter,
    Worker,
    WorkerHooks,
    WorkerOutcome,
    WorkerSetup,
    WorkerTask,
)
from longrun.scheduler.workers.command import contract, lines, process
from longrun.scheduler.workers.command.contract import Redactor, SessionFolder, Times
from longrun.scheduler.workers.command.meter import Meter
from longrun.scheduler.workers.command.output import OutputKeeper
from longrun.scheduler.workers.command.spec import CommandWorkerSpec
from longrun.store.errors import BudgetExhausted
from longrun.store.models import utcnow

EX_TEMPFAIL = 75
"""The exit code of a command that was rate-limited (sysexits.h)."""

END_MARGIN = timedelta(seconds=5)
"""How long before the session's deadline the command must be dead, so the session can still
checkpoint and say how it ended before the supervisor kills its process group."""
KILL_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL."""
QUESTION_GRACE = 10.0
"""Seconds a command may go on running after asking a question before it is stopped."""
WATCH_SECONDS = 0.25
"""How often the session looks at the lines, the clock, the stop flag and the budget."""
DRAIN_SECONDS = 2.0
"""How long the output is read after the command's end (what it left running is killed first)."""

PROBE = {"max_tokens": 1, "messages": []}
"""The smallest call there is: when not even it fits a cap, the cap is spent."""


@dataclass
class _Watch:
    """What the session has seen and done while the command runs."""

    stopping: str | None = None
    """Why SIGTERM was sent: "time box", "stop", "budget" or "question"."""
    kill_at: float | None = None
    killed: int | None = None
    """How many processes SIGKILL reached, once it was sent."""
    wrapped: bool = False
    budget: str | None = None
    """A usage line took a cap past its end: what the budget check said."""
    questions: list[dict[str, Any]] = field(default_factory=list)
    asked_at: float | None = None
    recorded: int = 0
    refused: int = 0
    dropped: int = 0


class CommandWorker:
    def __init__(
        self, spec: CommandWorkerSpec, setup: WorkerSetup, env: dict[str, str], redactor: Redactor
    ) -> None:
        self.spec = spec
        self.setup = setup
        self.env = env
        self.redactor = redactor

    async def run(self, task: WorkerTask, hooks: WorkerHooks, report: Reporter) -> WorkerOutcome:
        try:
            hooks.check_call(dict(PROBE))
        except BudgetExhausted as exc:
            return WorkerOutcome(EndReason.budget, exc.message)
        meter = Meter(self.spec, self.setup, hooks, report)
        try:
            folder = SessionFolder.make()
        except OSError as exc:
            return WorkerOutcome(EndReason.error, f"no folder for the command's files: {exc.strerror}")
        try:
            base_url, key = meter.start()
            if task.sandbox is not None:
                port = urlsplit(base_url).port
                assert port is not None
                task.sandbox.reach(port)  # before the command's words are made
            session = _Session(self, task, hooks, report, meter, folder)
            return await session.run(base_url, key)
        finally:
            meter.stop()
            folder.remove()


class _Session:
    """The command's one run in a session, from its start to the outcome."""

    def __init__(
        self,
        worker: CommandWorker,
        task: WorkerTask,
        hooks: WorkerHooks,
        report: Reporter,
        meter: Meter,
        folder: SessionFolder,
    ) -> None:
        self.spec = worker.spec
        self.setup = worker.setup
        self.redactor = worker.redactor
        self.extra_env = worker.env
        self.task = task
        self.hooks = hooks
        self.report = report
        self.meter = meter
        self.folder = folder
        self.watch = _Watch()
        self.events = lines.EventsFile(folder.events)
        self.outputs = {
            name: OutputKeeper(name, self._output, self.redactor.text) for name in ("stdout", "stderr")
        }

    def _output(self, data: dict[str, Any]) -> None:
        self.report.event("command_output", data)

    def _times(self) -> Times:
        deadline = self.task.deadline - END_MARGIN
        wrap_up_at = self.task.wrap_up_at or deadline
        return Times(min(wrap_up_at, deadline), deadline)

    def _env(self, times: Times, base_url: str, key: str) -> dict[str, str]:
        sandbox = self.task.sandbox
        env = dict(sandbox.env) if sandbox is not None else clean_env()
        env |= self.extra_env
        env |= contract.contract_env(
            self.folder, times, self.setup.run_id, self.setup.session_n, self.spec.model, self.spec.max_tokens
        )
        return env | {"ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": key}

    async def run(self, base_url: str, key: str) -> WorkerOutcome:
        times = self._times()
        argv = self.spec.argv()
        try:
            self.folder.context.write_text(contract.context_text(self.task.context, self.task.resume))
            self.folder.events.touch()
            proc = await process.start(
                argv,
                self.task.workspace,
                self._env(times, base_url, key),
                self.folder.signals,
                self.folder.path,
                self.task.sandbox,
            )
        except OSError as exc:
            return WorkerOutcome(
                EndReason.error, f"worker.command: cannot start {argv[0]}: {exc.strerror or exc}"
            )
        self.report.event(
            "command_started",
            {
                "argv": self.redactor.data(argv),
                "pid": proc.pid,
                "sandboxed": self.task.sandbox is not None,
                "wrap_up_at": times.wrap_up_at.isoformat(),
                "deadline": times.deadline.isoformat(),
            },
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        kill_at = started + max(1.0, (times.deadline - utcnow()).total_seconds())
        term_at = max(started + max(0.0, (times.wrap_up_at - utcnow()).total_seconds()), kill_at - KILL_GRACE)
        readers = [asyncio.create_task(self._read(stream, name)) for stream, name in self._streams(proc)]
        try:
            # Not `wait()`: on Python 3.11 it returns only once every pipe is closed, and what the
            # command leaves running may hold one open.
            while proc.proc.returncode is None:
                await asyncio.sleep(WATCH_SECONDS)
                self._look(proc, loop.time(), term_at, kill_at)
        finally:
            if proc.proc.returncode is None:  # cancelled: nothing of it may outlive the session
                proc.kill()
            await proc.close()
            await asyncio.wait(readers, timeout=DRAIN_SECONDS)
            for reader in readers:
                reader.cancel()
        code = proc.proc.returncode
        assert code is not None
        self._drain(final=True)
        self.report.event("command_exited", {"code": code, "seconds": round(loop.time() - started, 3)})
        return self._outcome(code)

    @staticmethod
    def _streams(proc: process.CommandProcess) -> list[tuple[asyncio.StreamReader, str]]:
        found = [(proc.proc.stdout, "stdout"), (proc.proc.stderr, "stderr")]
        return [(stream, name) for stream, name in found if stream is not None]

    async def _read(self, stream: asyncio.StreamReader, name: str) -> None:
        while data := await stream.read(65536):
            self.outputs[name].feed(data)

    def _look(self, proc: process.CommandProcess, now: float, term_at: float, kill_at: float) -> None:
        """One look while the command runs: its lines and output, the clock, the flags, the budget."""
        proc.deliver()
        self._drain(final=False)
        watch = self.watch
        if self.meter.refused or watch.budget is not None:
            self._stop(proc, "budget", now, kill_at)
        if not watch.wrapped and self.hooks.wrap_up_notice() is not None:
            watch.wrapped = True
            proc.signal("USR1")
            self.report.event("command_signal", {"signal": "SIGUSR1", "why": "wrap up"})
        if self.hooks.should_stop():
            self._stop(proc, "stop", now, kill_at)
        if watch.asked_at is not None and now >= watch.asked_at + QUESTION_GRACE:
            self._stop(proc, "question", now, kill_at)
        if now >= term_at:
            self._stop(proc, "time box", now, kill_at)
        if watch.kill_at is not None and now >= watch.kill_at and watch.killed is None:
            watch.killed = proc.kill()
            self.report.event("command_killed", {"processes": watch.killed, "why": watch.stopping})

    def _stop(self, proc: process.CommandProcess, why: str, now: float, kill_at: float) -> None:
        if self.watch.stopping is not None:
            return
        self.watch.stopping = why
        self.watch.kill_at = min(now + KILL_GRACE, kill_at)
        proc.signal("TERM")
        self.report.event("command_signal", {"signal": "SIGTERM", "why": why})

    def _drain(self, final: bool) -> None:
        """Turn the new lines into events, record output pieces."""
        for raw in self.events.new_lines(final=final):
            self._line(raw)
        for keeper in self.outputs.values():
            keeper.flush(final=final)
        if final and self.events.problem is not None:
            self.report.event("events_file_refused", {"problem": self.events.problem})
        if final and (self.watch.dropped or self.events.unread):
            data = {
                "lines": self.watch.dropped,
                "unread": self.events.unread,
                "read_bytes": self.events.offset,
            }
            self.report.event("command_lines_dropped", data)

    def _line(self, raw: lines.RawLine) -> None:
        watch = self.watch
        parsed = (
            lines.parse_line(raw.data) if raw.data is not None else f"longer than {lines.LINE_BYTES} bytes"
        )
        if isinstance(parsed, str):
            watch.refused += 1
            if watch.refused <= lines.MAX_REFUSED:
                shown = (raw.data or b"")[:200].decode(errors="replace")
                data = {"line": raw.number, "problem": parsed, "text": self.redactor.text(shown)}
                self.report.event("command_line_refused", data)
            else:
                watch.dropped += 1
            return
        if watch.recorded >= lines.MAX_LINES:
            watch.dropped += 1
            return
        watch.recorded += 1
        if isinstance(parsed, lines.UsageLine):
            self._usage(parsed)
            return
        if isinstance(parsed, lines.QuestionLine) and len(watch.questions) >= lines.MAX_QUESTIONS:
            self.report.event("command_line_refused", {"line": raw.number, "problem": "too many questions"})
            return
        kind, data = lines.event_data(parsed)
        data = self.redactor.data(data)
        self.report.event(kind, data)
        if isinstance(parsed, lines.ToolResultLine):
            self.hooks.after_tool(data["tool"], data["is_error"], data["output"])
        elif isinstance(parsed, lines.QuestionLine):
            number = len(watch.questions) + 1
            asked = {
                "id": f"question-{self.setup.session_n}-{number}",
                "name": ASK_HUMAN,
                "input": data["input"],
            }
            watch.questions.append(asked)
            if watch.asked_at is None:
                watch.asked_at = asyncio.get_running_loop().time()

    def _usage(self, line: lines.UsageLine) -> None:
        """Price a call the command made elsewhere; a cap it spent stops the command."""
        self.report.model_call(lines.model_call(line, self.spec.model))
        if self.watch.budget is None:
            try:
                self.hooks.check_call(dict(PROBE))
            except BudgetExhausted as exc:
                self.watch.budget = exc.message

    def _outcome(self, code: int) -> WorkerOutcome:
        """Record the handoff, then say how the session ended."""
        read = contract.read_handoff(self.folder.handoff, self.redactor, utcnow())
        if read.problem is not None:
            self.report.event("handoff_refused", {"problem": self.redactor.text(read.problem)})
        elif read.handoff is not None:
            self.hooks.handoff(read.handoff)
        watch, meter = self.watch, self.meter
        if meter.refused:
            return WorkerOutcome(EndReason.budget, meter.refused[0].message)
        if watch.budget is not None:
            return WorkerOutcome(EndReason.budget, watch.budget)
        if meter.limits:
            hit = meter.limits[-1]
            self.report.event("rate_limited_by_api", {"status": hit.status, "message": hit.message[:300]})
            retry_at = reset_from_headers(hit.headers, utcnow())
            return WorkerOutcome(
                EndReason.rate_limited, hit.message[:300] or "the API's usage limit", retry_at
            )
        if watch.questions and self.hooks.pause is not None:
            record = {
                "role": contract.RECORD_ROLE,
                "program": self.spec.program(),
                "session": self.setup.session_n,
                "questions": [{"id": q["id"], **q["input"]} for q in watch.questions],
            }
            return WorkerOutcome(EndReason.approval, self.hooks.pause([record], watch.questions))
        if watch.stopping in ("time box", "question"):
            how = "killed" if watch.killed is not None else "stopped"
            return WorkerOutcome(EndReason.stopped, f"the time box ran out; the command was {how}")
        if watch.stopping == "stop":
            return WorkerOutcome(EndReason.stopped, "a stop was requested; the command was stopped")
        if code == 0:
            return WorkerOutcome(EndReason.finished, "the command exited 0")
        if code == EX_TEMPFAIL:
            when = f" until {read.retry_at.isoformat(timespec='seconds')}" if read.retry_at else ""
            return WorkerOutcome(
                EndReason.rate_limited, f"the command exited 75: rate-limited{when}", read.retry_at
            )
        said = self.outputs["stderr"].last_lines()
        return WorkerOutcome(
            EndReason.error, f"the command exited {_code(code)}" + (f": {said}" if said else "")
        )


def _code(code: int) -> str:
    """An exit code as a person reads it: a signal's death named."""
    number = -code if code < 0 else code - 128 if 128 < code <= 128 + 64 else 0
    if number:
        try:
            return f"{code} ({signal.Signals(number).name})"
        except ValueError:
            pass
    return str(code)


def make_worker(spec: WorkerSpec, setup: WorkerSetup) -> Worker:
    assert isinstance(spec, CommandWorkerSpec)
    values, secrets = contract.resolve_env(spec.env, os.environ)
    return CommandWorker(spec, setup, values, Redactor(secrets))
