"""Injected faults: make a chosen local worker fail the way its AWS service fails.

`LOCAL_FAULTS` (or `--fault`, repeatable) is a comma-separated list of:
- a Task state's name, e.g. `TrainXGBoost`: every attempt of that state's task
  fails (so Retry runs out and Catch takes over);
- `rollback`: the next production UpdateEndpoint is rolled back by its
  deployment guardrails (the endpoint stays InService on the previous config).

The failure has the shape the integration produces on AWS: a Lambda raises
(error = exception class name, cause = the Lambda error JSON); a `.sync` job
ends FAILED (`States.TaskFailed`, cause = the job's description); an API call
gets a service error (e.g. `SageMaker.AmazonSageMakerException`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from localmode.lambdas import LambdaError
from localmode.asl import TaskFailed, TaskRequest, split_resource

ROLLBACK = "rollback"
ENV_VAR = "LOCAL_FAULTS"
MESSAGE = "fault injected by local mode ({})"


class InjectedFault(Exception):
    """Raised inside a Lambda whose state was chosen to fail."""


def failure_for(state_name: str, resource: str) -> TaskFailed:
    integration, pattern = split_resource(resource)
    message = MESSAGE.format(f"{ENV_VAR}={state_name}")
    if integration == "lambda:invoke":
        return TaskFailed(InjectedFault.__name__, LambdaError(InjectedFault.__name__, message, []).payload_json())
    if pattern == "sync":
        if integration.startswith("glue:"):
            description = {"JobRunState": "FAILED", "ErrorMessage": message}
        else:
            description = {"TrainingJobStatus": "Failed", "FailureReason": f"AlgorithmError: {message}"}
        return TaskFailed("States.TaskFailed", json.dumps(description))
    service = integration.split(":")[1] if integration.startswith("aws-sdk:") else integration.split(":")[0]
    if integration.startswith("aws-sdk:"):
        label = {"sagemaker": "SageMaker"}.get(service, service.capitalize())
        return TaskFailed(f"{label}.{label}Exception", f"{message} (Service: {label}; Status Code: 500)")
    if service == "sagemaker":
        return TaskFailed("SageMaker.AmazonSageMakerException", f"{message} (Service: AmazonSageMaker; Status Code: 500)")
    return TaskFailed(f"{service.upper()}.InternalErrorException", f"{message} (Service: Amazon{service.upper()}; Status Code: 500)")


@dataclass
class Faults:
    states: set[str] = field(default_factory=set)
    rollback: bool = False

    @classmethod
    def parse(cls, specs: list[str] | str | None, task_states: dict[str, str]) -> "Faults":
        """`task_states`: the definition's Task states (name -> resource), to refuse unknown names."""
        items = []
        for spec in [specs] if isinstance(specs, str) else (specs or []):
            items += [item.strip() for item in spec.split(",") if item.strip()]
        faults = cls()
        for item in items:
            if item == ROLLBACK:
                faults.rollback = True
            elif item in task_states:
                faults.states.add(item)
            else:
                raise ValueError(
                    f"unknown fault {item!r}: use '{ROLLBACK}' or a Task state of the definition "
                    f"({', '.join(sorted(task_states))})"
                )
        return faults

    def __bool__(self) -> bool:
        return bool(self.states or self.rollback)

    def before_call(self, request: TaskRequest) -> None:
        """The dispatcher's hook: fail the chosen states."""
        if request.state_name in self.states:
            raise failure_for(request.state_name, request.resource)

    def describe(self) -> list[str]:
        return sorted(self.states) + ([ROLLBACK] if self.rollback else [])
