"""The state-machine definition and its Task calls, without any interpreter:
`${...}` substitutions, Task states, resource names, and the request/failure
types the local workers speak (localmode.sfn runs them in moto). Light to
import: the command line checks its arguments with it before starting moto
or Spark."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from localmode import REPO_ROOT

PIPELINE_DEFINITION = REPO_ROOT / "statemachine" / "pipeline.asl.json"
SUBSTITUTION = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
RESOURCE_PREFIX = re.compile(r"^arn:aws[a-z-]*:states:::")


class TaskFailed(Exception):
    """Raised by a handler: the task fails with this Step Functions error name and cause."""

    def __init__(self, error: str, cause: str = ""):
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


@dataclass
class TaskRequest:
    """One Task state's call, as the handler sees it."""

    state_name: str
    resource: str  # e.g. "lambda:invoke.waitForTaskToken", "aws-sdk:sagemaker:describeEndpoint"
    parameters: dict
    execution_arn: str
    execution_name: str
    state_machine_arn: str
    task_token: str | None = None
    retry_count: int = 0

    @property
    def integration(self) -> str:
        """The resource without its pattern suffix: the `service:action` key handlers register under."""
        return split_resource(self.resource)[0]

    @property
    def pattern(self) -> str | None:
        """None (request-response), "sync" or "waitForTaskToken"."""
        return split_resource(self.resource)[1]


def split_resource(resource: str) -> tuple[str, str | None]:
    """'arn:aws:states:::glue:startJobRun.sync' (or 'glue:startJobRun.sync') -> ('glue:startJobRun', 'sync')."""
    short = RESOURCE_PREFIX.sub("", resource)
    integration, dot, pattern = short.partition(".")
    return integration, (pattern if dot else None)


def task_resources(definition: dict) -> dict[str, str]:
    """Every Task state in the definition (including Parallel branches and Map iterators): name -> resource."""
    found: dict[str, str] = {}

    def walk(states: dict) -> None:
        for name, state in states.items():
            if state.get("Type") == "Task":
                found[name] = state["Resource"]
            for branch in state.get("Branches", []):
                walk(branch["States"])
            for key in ("Iterator", "ItemProcessor"):
                if key in state:
                    walk(state[key]["States"])

    walk(definition["States"])
    return found


def render_definition(template: str, values: dict[str, str]) -> str:
    """Fill the definition's `${Name}` substitutions (as SAM's DefinitionSubstitutions would)."""
    missing = sorted({m for m in SUBSTITUTION.findall(template) if m not in values})
    if missing:
        raise KeyError(f"No local value for the definition's substitutions: {', '.join(missing)}")
    return SUBSTITUTION.sub(lambda m: str(values[m.group(1)]), template)


def substitution_names(template: str) -> set[str]:
    return set(SUBSTITUTION.findall(template))


def definition_tasks(path: Path = PIPELINE_DEFINITION) -> dict[str, str]:
    """The definition file's Task states (name -> resource), substitutions left as placeholders."""
    template = path.read_text(encoding="utf-8")
    return task_resources(json.loads(render_definition(template, {name: "x" for name in substitution_names(template)})))
