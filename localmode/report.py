"""report.json for a local run, built from what Step Functions recorded (the
execution history) plus what the run left in moto (manifest, QA report,
endpoints), and the progress lines printed while it runs."""
from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from typing import Any, Callable


def _iso(ts: datetime.datetime | None) -> str | None:
    return ts.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds") if ts else None


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def readable_cause(cause: str | None) -> str | None:
    """The human part of a cause: a Lambda's errorMessage, a Glue run's ErrorMessage, a training FailureReason."""
    document = _json(cause)
    if isinstance(document, dict):
        for key in ("errorMessage", "ErrorMessage", "FailureReason"):
            if document.get(key):
                return str(document[key])
    return cause


@dataclass
class StateRecord:
    name: str
    type: str
    entered: datetime.datetime
    exited: datetime.datetime | None = None
    attempts: int = 0
    errors: list[dict] = field(default_factory=list)
    succeeded: bool | None = None
    output: Any = None

    @property
    def outcome(self) -> str:
        if self.type == "Fail":
            return "failed"
        if self.exited is None:
            return "running"
        if self.type == "Task":
            return "succeeded" if self.succeeded else "failed"
        return "succeeded"

    def to_json(self) -> dict:
        record = {
            "name": self.name,
            "type": self.type,
            "started_at": _iso(self.entered),
            "ended_at": _iso(self.exited),
            "seconds": round((self.exited - self.entered).total_seconds(), 3) if self.exited else None,
            "outcome": self.outcome,
        }
        if self.type == "Task":
            record["attempts"] = self.attempts
        if self.errors:
            last = self.errors[-1]
            record.update(error=last["error"], cause=last["cause"], message=readable_cause(last["cause"]))
        return record


class HistoryTracker:
    """Turns execution-history events into state records (and progress lines) as they arrive."""

    def __init__(self, on_line: Callable[[str], None] | None = None, started: datetime.datetime | None = None):
        self.records: list[StateRecord] = []
        self.on_line = on_line
        self.started = started
        self.last_state_data: Any = None
        self.failed_event: dict | None = None

    def _open(self, name: str) -> StateRecord | None:
        for record in reversed(self.records):
            if record.name == name and record.exited is None:
                return record
        return None

    def _current_task(self) -> StateRecord | None:
        for record in reversed(self.records):
            if record.exited is None and record.type == "Task":
                return record
        return None

    def _elapsed(self, ts: datetime.datetime) -> str:
        if self.started is None:
            self.started = ts
        return f"{(ts - self.started).total_seconds():7.1f}s"

    def _say(self, line: str) -> None:
        if self.on_line is not None:
            self.on_line(line)

    def feed(self, events: list[dict]) -> None:
        for event in events:
            kind, ts = event["type"], event["timestamp"]
            if self.started is None and kind == "ExecutionStarted":
                self.started = ts
            if kind.endswith("StateEntered"):
                details = event["stateEnteredEventDetails"]
                record = StateRecord(details["name"], kind[: -len("StateEntered")], ts)
                self.records.append(record)
                if record.type == "Fail":
                    self.last_state_data = _json(details.get("input")) or self.last_state_data
                if record.type in ("Task", "Wait"):
                    self._say(f"{self._elapsed(ts)}  {record.name} ...")
            elif kind.endswith("StateExited"):
                details = event["stateExitedEventDetails"]
                record = self._open(details["name"])
                if record is None:
                    continue
                record.exited = ts
                data = _json(details.get("output"))
                if data is not None:
                    self.last_state_data = data
                    record.output = data
                if record.type == "Wait":
                    self._say(f"{self._elapsed(ts)}  {record.name} done in {(ts - record.entered).total_seconds():.1f}s")
                if record.type == "Task":
                    seconds = (ts - record.entered).total_seconds()
                    if record.succeeded:
                        retried = f" after {record.attempts} attempts" if record.attempts > 1 else ""
                        self._say(f"{self._elapsed(ts)}  {record.name} done in {seconds:.1f}s{retried}")
                    else:
                        last = record.errors[-1] if record.errors else {"error": "?", "cause": ""}
                        self._say(
                            f"{self._elapsed(ts)}  {record.name} FAILED in {seconds:.1f}s: {last['error']}: "
                            f"{_one_line(readable_cause(last['cause']))}"
                        )
            elif kind == "TaskScheduled":
                record = self._current_task()
                if record:
                    record.attempts += 1
            elif kind == "TaskSucceeded":
                record = self._current_task()
                if record:
                    record.succeeded = True
            elif kind in ("TaskFailed", "TaskTimedOut"):
                details = event.get("taskFailedEventDetails") or event.get("taskTimedOutEventDetails") or {}
                record = self._current_task()
                if record:
                    record.succeeded = False
                    record.errors.append({"error": details.get("error"), "cause": details.get("cause")})
            elif kind in ("ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"):
                self.failed_event = event
                for record in self.records:
                    if record.exited is None and record.type == "Fail":
                        record.exited = ts
            elif kind == "ExecutionSucceeded":
                self._say(f"{self._elapsed(ts)}  execution succeeded")

    def state_data(self, name: str) -> Any:
        """The state JSON as it left the last run of state `name` (None if it never finished)."""
        record = next((r for r in reversed(self.records) if r.name == name and r.exited), None)
        return record.output if record else None

    def step_seconds(self) -> dict[str, float]:
        """Seconds per Task and Wait state that ran (loops and retries summed), in order of first
        appearance, however short: the steps the progress lines name."""
        totals: dict[str, float] = {}
        for record in self.records:
            if record.type in ("Task", "Wait") and record.exited:
                totals[record.name] = totals.get(record.name, 0.0) + (record.exited - record.entered).total_seconds()
        return {name: round(seconds, 3) for name, seconds in totals.items()}

    def breakdown(self) -> dict[str, float]:
        """Seconds spent per state name (loops and retries summed), in order of first appearance."""
        totals: dict[str, float] = {}
        for record in self.records:
            if record.exited:
                totals[record.name] = totals.get(record.name, 0.0) + (record.exited - record.entered).total_seconds()
        return {name: round(seconds, 3) for name, seconds in totals.items()}


def _one_line(text: str | None, limit: int = 300) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def failure_of(tracker: HistoryTracker, description: dict) -> dict | None:
    """(state, error, cause) of a failed run: the definition's `failure` record if it got that far."""
    if description.get("status") == "SUCCEEDED":
        return None
    data = tracker.last_state_data if isinstance(tracker.last_state_data, dict) else {}
    failure = data.get("failure") if isinstance(data.get("failure"), dict) else None
    if failure is None:
        # No failure record: the last failed task, else the state that was running when the run was stopped.
        candidates = [r for r in tracker.records if r.errors] or [r for r in tracker.records if r.exited is None]
        state = candidates[-1].name if candidates else None
        failure = {"state": state, "error": description.get("error"), "cause": description.get("cause")}
    # The failure email the pipeline wrote (what happened, what to do), when its cleanup step ran.
    notice = (data.get("cleanup") or {}).get("notice") if isinstance(data.get("cleanup"), dict) else None
    explanation = notice.get("message") if isinstance(notice, dict) else None
    return {**failure, "message": readable_cause(failure.get("cause")), "explanation": explanation}
