"""What a failed run's email says: the failed state, error and cause turned
into what happened and what to do, in words.

Pure functions: no AWS calls. The cause comes in whatever shape the failing
integration gave it (a Lambda's error JSON, a Glue job run's JSON, plain
text, or nothing at all: a task-token timeout's cause is empty).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

# SNS: "Subjects must be ... less than 100 characters long" (sns:Publish, botocore's model).
SNS_SUBJECT_LIMIT = 99
_QUOTA = re.compile(r"service limit '(?P<quota>[^']+)' is (?P<limit>[^,]+), with current utilization of "
                    r"(?P<used>[^,]+) and a request delta of (?P<delta>[^.]+)")
_NOT_AUTHORIZED = re.compile(r"(?:User|Principal): (?P<principal>\S+) is not authorized to perform: (?P<action>\S+)"
                             r"(?: on resource: (?P<resource>[^\s,]+))?(?P<rest>.*)")
_BOTOCORE = re.compile(r"^An error occurred \((?P<code>[^)]+)\) when calling the (?P<operation>\w+) operation"
                       r"(?: \(reached max retries: \d+\))?: (?P<message>.*)$", re.S)


@dataclass(frozen=True)
class Explanation:
    summary: str  # what happened
    action: str   # what to do about it


@dataclass(frozen=True)
class Retry:
    """How the person who started it starts the same thing again: a run is an upload, a rollback a
    new rollback request (it has no data file and no QA endpoint)."""

    again: str      # "... then <again>."
    new_start: str  # a sentence of its own


RUN = Retry("upload the file again", "Upload the file again to start a new run.")
ROLLBACK = Retry("request the rollback again",
                 "Request the rollback again (scripts/deploy.py rollback, or start the execution with the same "
                 "rollback input) to start a new one.")


def readable_cause(cause) -> str:
    """The human part of a cause: a Lambda's errorMessage, a Glue run's
    ErrorMessage, a training job's FailureReason, else the text itself."""
    if not isinstance(cause, str) or not cause.strip():
        return ""
    try:
        document = json.loads(cause)
    except ValueError:
        return cause.strip()
    if isinstance(document, dict):
        for key in ("errorMessage", "ErrorMessage", "FailureReason"):
            if document.get(key):
                return str(document[key]).strip()
        if document.get("TrainingJobStatus"):
            # A training job that ended without a FailureReason (e.g. Stopped): its status says what happened.
            return (f"training job {document.get('TrainingJobName', '?')} ended {document['TrainingJobStatus']} "
                    f"({document.get('SecondaryStatus') or 'no secondary status'})")
    return cause.strip()


def duration_in_words(seconds) -> str:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds <= 0:
        return "the configured time"
    seconds = int(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def _botocore_parts(detail: str) -> tuple[str | None, str | None, str]:
    match = _BOTOCORE.match(detail)
    if not match:
        return None, None, detail
    return match.group("code"), match.group("operation"), match.group("message").strip()


def _quota(detail: str, region: str, retry: Retry) -> Explanation:
    code, operation, message = _botocore_parts(detail)
    match = _QUOTA.search(message)
    where = f"in {region}" if region else "in this region"
    if match:
        quota = match.group("quota")
        summary = (f"SageMaker refused {operation or 'the request'}: the account quota '{quota}' {where} is "
                   f"{match.group('limit')}, {match.group('used')} are in use and the run needed "
                   f"{match.group('delta')} more.")
        action = (f"Request an increase of '{quota}' for {region or 'this region'} in the Service Quotas console "
                  "(AWS services > Amazon SageMaker), or choose an instance type the account has quota for "
                  f"(TrainingInstanceType / EndpointInstanceType), then {retry.again}.")
    else:
        summary = f"SageMaker refused {operation or 'the request'} because an account quota {where} is too low: {message}"
        action = (f"Find the quota named in the message in the Service Quotas console ({region or 'this region'}) and "
                  f"request an increase, or use a smaller or different instance type; then {retry.again}.")
    return Explanation(summary, action)


def _access_denied(detail: str, retry: Retry) -> Explanation:
    _, operation, message = _botocore_parts(detail)
    match = _NOT_AUTHORIZED.search(message)
    if match:
        resource = match.group("resource")
        summary = (f"{match.group('principal')} may not call {match.group('action')}"
                   + (f" on {resource}" if resource else "") + ".")
        if re.search(r"explicit deny|service control policy", match.group("rest") or "", re.I):
            action = ("An explicit deny (a service control policy or a permissions boundary) blocks it: ask the "
                      f"account administrator to allow it, then {retry.again}.")
        else:
            action = (f"Grant {match.group('action')}" + (f" on {resource}" if resource else "")
                      + f" to that role in template.yaml, redeploy, then {retry.again}.")
    else:
        summary = f"AWS denied {operation or 'a call'}: {message}"
        action = f"Give the role named in the message the missing permission in template.yaml, redeploy, then {retry.again}."
    return Explanation(summary, action)


def explain(state: str, error: str, cause, *, region: str = "", approval_window_seconds=None,
            retry: Retry = RUN) -> Explanation:
    """What happened and what to do, for a run (or with `retry=ROLLBACK`, a rollback) that failed in
    `state` with `error`."""
    detail = readable_cause(cause)
    state = state or "an unknown state"
    error = error or "an unnamed error"

    if error == "QuotaExceeded":
        return _quota(detail, region, retry)
    if error == "AccessDenied" or error == "States.Permissions":
        return _access_denied(detail, retry)
    if error in ("ServiceThrottled", "ServiceUnavailable"):
        kind = "throttling" if error == "ServiceThrottled" else "failing with server errors"
        return Explanation(f"AWS kept {kind} in {state} after the pipeline's retries ({detail or 'no details'}).",
                           f"Nothing is wrong with the request itself: {retry.again} later.")
    if error == "States.Timeout" and state == "RequestApproval":
        window = duration_in_words(approval_window_seconds)
        return Explanation(f"Nobody approved or rejected the model within the approval window ({window}); the links "
                           "in the approval email have expired.",
                           f"{retry.new_start} It sends a new approval email.")
    if error in ("States.Timeout", "States.HeartbeatTimeout"):
        return Explanation(f"{state} did not finish within its time limit.",
                           f"Check that step's service (its logs) for what held it up, then {retry.again}.")
    if error == "ApprovalRejected":
        reason = (detail or "no reason was given").rstrip()
        # The reviewer's own sentence keeps its full stop: no "..".
        stop = "" if reason.endswith((".", "!", "?")) else "."
        if retry is ROLLBACK:
            return Explanation(f"The reviewer rejected the rollback: {reason}{stop}",
                               "Nothing to undo: production keeps the version it serves.")
        return Explanation(f"The reviewer rejected the model: {reason}{stop}",
                           "Nothing to undo. Fix what the reviewer pointed out and upload the data again to retrain.")
    if error == "QualityBelowThreshold":
        return Explanation(f"The new model did not pass QA: {detail}",
                           "Read the QA report named above (confusion matrix for classification, residuals and the "
                           "largest errors for regression); improve the data or, if the bar is too high, set "
                           "quality_gate.threshold in the dataset spec (or the stack default AccuracyThreshold / "
                           "R2Threshold); then upload again.")
    if error == "UnknownDataset" and retry is ROLLBACK:
        return Explanation(f"The rollback's dataset has no spec: {detail}",
                           "Name a dataset that has datasets/<dataset>.json in the artifacts bucket (make deploy "
                           f"puts it there), then {retry.again}.")
    if error == "UnknownDataset":
        return Explanation(f"The run's dataset has no spec: {detail}",
                           "Nothing was computed. Upload the file under the folder of a dataset that has a spec "
                           "(input/<dataset>/<file>), or add datasets/<dataset>.json and run make deploy, then "
                           f"{retry.again}.")
    if error == "DatasetSpecInvalid":
        return Explanation(f"The dataset's spec in the artifacts bucket cannot be used: {detail}",
                           "Nothing was computed. Fix datasets/<dataset>.json, run make deploy (it puts the spec "
                           f"in the artifacts bucket), then {retry.again}.")
    if error == "WorseThanProduction":
        return Explanation(f"The new model is worse than the one in production: {detail}",
                           "Production keeps serving its model. Compare the two in the QA report "
                           "(versus_production, in the gate's metric); if the drop is acceptable, raise "
                           "MaxRegressionAgainstProduction, then upload again.")
    if error == "Superseded":
        return Explanation(f"A newer upload reached production first: {detail}",
                           "Nothing to do: production serves the newer run's model, which is what you want.")
    if error == "ProductionRolledBack":
        return Explanation(f"The production update was rolled back by its deployment guardrails: {detail}",
                           "Look at the rollback alarms (5xx errors, model latency) in CloudWatch for the baking "
                           f"period, fix the cause, then {retry.again}.")
    if error in ("ProductionEndpointFailed", "ProductionEndpointUnusable"):
        return Explanation(f"The production endpoint is unusable: {detail}",
                           f"It needs a person: repair or delete it in the SageMaker console, then {retry.again}.")
    if error == "QAEndpointFailed":
        return Explanation(f"SageMaker could not create the QA endpoint: {detail}",
                           "The message names the cause (often an image the execution role cannot pull, or a "
                           "model that does not start); fix it and upload again.")
    if error in ("TrainingJobFailed", "TrainingJobStopped") or (error == "States.TaskFailed" and state == "TrainXGBoost"):
        return Explanation(f"The training job did not complete: {detail}",
                           "See the training job's CloudWatch log (/aws/sagemaker/TrainingJobs) for details; fix "
                           "the data or the training settings and upload again.")
    if error == "RequestRejected":
        _, operation, message = _botocore_parts(detail)
        return Explanation(f"AWS refused {operation or 'a request'} as invalid: {message or 'no details'}",
                           "A retry cannot help: fix the setting the message names (a template parameter, the image or "
                           "the SageMaker execution role), redeploy, then upload the file again.")
    if error == "TrainingJobConflict":
        return Explanation(f"A training job with this run's name already exists and is not this run's: {detail}",
                           "SageMaker never reuses a training job name. Upload the file again (a new upload is a new "
                           "run with a new name), or start the execution under another name.")
    if error == "WaitTimeExpired":
        return Explanation(detail or f"{state} waited longer than allowed.",
                           "Look at the resource in the SageMaker console. If it is only slow, raise "
                           f"EndpointWaitSeconds (or MaxTrainingSeconds); then {retry.again}.")
    if error == "States.TaskFailed" and state == "PreprocessWithGlue":
        return Explanation(f"The Glue job failed: {detail or 'it gave no reason'}",
                           "The message names the problem with the data file (and the first offending lines); fix "
                           "the file and upload it again.")
    if error == "Lambda.Unknown":
        return Explanation(f"The function behind {state} crashed or ran out of time: {detail or 'no details'}",
                           "Read that function's CloudWatch log for the run; it usually needs more memory or time.")
    if error == "InvalidInput":
        return Explanation(detail or "The execution input has no input_uri.",
                           'Start the execution with {"input_uri": "s3://bucket/key"}, or upload the file instead.')
    if detail:
        return Explanation(f"{state} failed with {error}: {detail}", f"Fix what the message describes, then {retry.again}.")
    return Explanation(f"{state} failed with {error}; AWS gave no further details.",
                       f"Look at the execution's history in the Step Functions console for {state}. {retry.new_start}")


_QA_LINES = {
    "deleted": "QA endpoint {name}: deleted.",
    "already_deleting": "QA endpoint {name}: being deleted.",
    "absent": "QA endpoint {name}: not running.",
    "pending": ("QA endpoint {name}: still being created; a cleanup workflow deletes it as soon as SageMaker "
                "lets it (nothing to do)."),
    "none_named": "QA endpoint: none was created.",
    "refused": "QA endpoint {name}: NOT deleted (its name equals the production endpoint's); check it by hand.",
}


def failure_notice(run_id: str, failure: dict, *, region: str = "", approval_window_seconds=None,
                   qa_endpoint: str | None = None, qa_action: str | None = None, rollback: bool = False) -> dict:
    """The failure email: {"subject", "message"}. `rollback`: the run was a rollback, which has no data
    file to upload again and no QA endpoint."""
    state, error, cause = failure.get("state"), failure.get("error"), failure.get("cause")
    explanation = explain(state, error, cause, region=region, approval_window_seconds=approval_window_seconds,
                          retry=ROLLBACK if rollback else RUN)
    detail = readable_cause(cause)
    kind = "rollback" if rollback else "run"
    production = f"Production: not changed by this {kind}."
    if state == "CheckProduction" and error == "WaitTimeExpired":
        production = f"Production: this {kind}'s update had not finished; check the production endpoint in SageMaker."
    lines = [
        f"Run {run_id} failed in {state}.",
        "",
        f"What happened: {explanation.summary}",
        f"What to do: {explanation.action}",
        "",
        production,
        *([] if rollback else
          [_QA_LINES.get(qa_action or "", "QA endpoint {name}: see the SageMaker console.").format(name=qa_endpoint)]),
        "",
        f"Error: {error}",
        f"Details: {detail if detail else 'none were given'}",
    ]
    # SNS refuses a Subject of 100 characters or more (sns:Publish in botocore's model); a console execution
    # name is up to 80, so a long one is cut rather than losing the email.
    return {"subject": f"Pipeline run {run_id} failed in {state}"[:SNS_SUBJECT_LIMIT], "message": "\n".join(lines)}
