"""The two ways the job refuses a run before it writes anything: the data does not match the spec
(InvalidInputData), or the pipeline holds a stage the bundle writer cannot express (UnsupportedStage).
A spec it cannot run is dataset_spec.InvalidSpec. On Glue the message becomes the job run's
ErrorMessage, and so the cause Step Functions shows."""
from __future__ import annotations


class InvalidInputData(ValueError):
    """The training data does not match the dataset spec; nothing was fitted or kept.

    `problems` holds one dict per problem kind: kind, count, lines (the first
    offending locations, "line N" or "file:line N"), message.
    """

    def __init__(self, message: str, problems: list[dict] | None = None):
        super().__init__(message)
        self.problems = problems or []


class UnsupportedStage(ValueError):
    """The pipeline holds a Spark stage the bundle writer cannot express for MLeap runtime 0.20.0."""
