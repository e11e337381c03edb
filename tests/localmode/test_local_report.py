"""The progress lines and the per-step summary of a local run (localmode/report.py): every Task
and Wait state that ran is named, however short, and a Wait says when it is done (issue 23: the
summary dropped RecordApproval on some runs, and a Wait printed no "done" line)."""
from __future__ import annotations

import datetime

from localmode import runner
from localmode.report import HistoryTracker
from localmode.session import RunResult

T0 = datetime.datetime(2026, 12, 8, 3, 0, tzinfo=datetime.timezone.utc)


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def state(kind: str, name: str, entered: float, exited: float, task: bool = False) -> list[dict]:
    events = [{"type": f"{kind}StateEntered", "timestamp": at(entered), "stateEnteredEventDetails": {"name": name}}]
    if task:
        events += [{"type": "TaskScheduled", "timestamp": at(entered)},
                   {"type": "TaskSucceeded", "timestamp": at(exited)}]
    events.append({"type": f"{kind}StateExited", "timestamp": at(exited),
                   "stateExitedEventDetails": {"name": name, "output": "{}"}})
    return events


def test_every_step_is_listed_however_short_and_a_wait_says_done():
    lines: list[str] = []
    tracker = HistoryTracker(on_line=lines.append)
    tracker.feed([{"type": "ExecutionStarted", "timestamp": at(0)}]
                 + state("Task", "RegisterModel", 0.0, 0.06, task=True)
                 + state("Pass", "RecordApprovalRequest", 0.06, 0.06)
                 + state("Task", "RecordApproval", 0.06, 0.07, task=True)
                 + state("Wait", "WaitForProduction", 0.07, 1.07)
                 + state("Wait", "WaitForProduction", 1.5, 2.5))
    assert tracker.step_seconds() == {"RegisterModel": 0.06, "RecordApproval": 0.01, "WaitForProduction": 2.0}
    assert "    1.1s  WaitForProduction done in 1.0s" in lines
    assert "    0.1s  RecordApproval done in 0.0s" in lines

    said: list[str] = []
    report = {"outcome": "deployed", "seconds": 2.5, "state_seconds": tracker.breakdown(),
              "step_seconds": tracker.step_seconds(), "qa": None, "cleanup": None, "failure": None,
              "endpoints": {"qa": {"name": "r-qa", "exists": False},
                            "production": {"name": "car-prod", "exists": True, "status": "InService", "config": "c"}}}
    runner._summarize(said.append, RunResult("r", "arn", "SUCCEEDED", report, 0))
    listed = [line.split()[0] for line in said if line.startswith("  ")]
    assert listed == ["RegisterModel", "RecordApproval", "WaitForProduction"]


def test_a_wait_state_waits_its_seconds_times_the_local_scale_and_a_stop_ends_it():
    """The definition's Wait states run under moto's interpreter; local mode scales their seconds
    (docs/local-mode.md, Time) without changing what runs next."""
    import threading
    import time

    from localmode import sfn

    class Env:
        program_state_event = threading.Event()

    waited = []
    with sfn.install(wait_time_scale=0.05):
        from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

        started = time.monotonic()
        WaitFunction._wait_interval(None, Env(), 4)
        waited.append(time.monotonic() - started)
        stopped = Env()
        stopped.program_state_event = threading.Event()
        stopped.program_state_event.set()  # what StopExecution does
        started = time.monotonic()
        WaitFunction._wait_interval(None, stopped, 60)
        waited.append(time.monotonic() - started)
    assert 0.15 <= waited[0] < 1.5 and waited[1] < 0.5
    assert WaitFunction._wait_interval is not sfn._scaled_wait_interval  # restored
