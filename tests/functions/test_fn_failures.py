"""What a failure is called and what the email says about it.

`pipeline_common.aws_errors` names AWS errors so the state machine retries
only throttling and server errors; `pipeline_common.failures` turns a failed
state, its error and cause into what happened and what to do. The error texts
below are SageMaker's own, as users reported them (each cited), run through
botocore's real error parsing (Stubber) where a ClientError is involved."""
from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber

from lambda_fixtures import REGION
from pipeline_common import aws_errors
from pipeline_common.failures import ROLLBACK, duration_in_words, explain, failure_notice

# https://github.com/gabehollombe-aws/jupyter-notebooks/issues/1
TRAINING_QUOTA = ("The account-level service limit 'ml.p3.2xlarge for training job usage' is 0 Instances, with current "
                  "utilization of 0 Instances and a request delta of 1 Instances. Please contact AWS support to request "
                  "an increase for this limit.")
# https://github.com/awsdocs/amazon-sagemaker-developer-guide/issues/70
ENDPOINT_QUOTA = ("The account-level service limit 'ml.m4.xlarge for endpoint usage' is 0 Instances, with current "
                  "utilization of 0 Instances and a request delta of 1 Instances. Please contact AWS support to request "
                  "an increase for this limit.")
# https://github.com/aws-samples/aws-modern-application-workshop/issues/253
EXPLICIT_DENY = ("User: arn:aws:sts::395190607265:assumed-role/MysfitsNotbookRole/SageMaker is not authorized to perform: "
                 "sagemaker:CreateTrainingJob on resource: arn:aws:sagemaker:us-east-1:395190607265:training-job/"
                 "knn-2021-04-20-19-44-27-275 with an explicit deny")
# https://github.com/aws/amazon-sagemaker-examples/pull/3108
DUPLICATE_NAME = ("Training job names must be unique within an AWS account and region, and a training job with this name "
                  "already exists (arn:aws:sagemaker:us-west-2:521695447989:training-job/sagemaker-r-xgboost-00-12-38)")


def sagemaker_error(operation: str, code: str, message: str, status: int = 400) -> Exception:
    """The ClientError botocore raises for this SageMaker answer."""
    client = boto3.client("sagemaker", region_name=REGION)
    method = {"CreateTrainingJob": "create_training_job", "CreateEndpoint": "create_endpoint",
              "DescribeEndpoint": "describe_endpoint"}[operation]
    with Stubber(client) as stub:
        stub.add_client_error(method, code, message, http_status_code=status)
        try:
            getattr(client, method)(**_minimal(operation))
        except Exception as error:  # noqa: BLE001 - the point is to catch what botocore raises
            return error
    raise AssertionError("the stub did not raise")


def _minimal(operation: str) -> dict:
    if operation == "CreateTrainingJob":
        return {"TrainingJobName": "x-train", "AlgorithmSpecification": {"TrainingInputMode": "File"},
                "RoleArn": "arn:aws:iam::123456789012:role/r", "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
                "ResourceConfig": {"VolumeSizeInGB": 1}, "StoppingCondition": {"MaxRuntimeInSeconds": 60}}
    if operation == "CreateEndpoint":
        return {"EndpointName": "x-qa", "EndpointConfigName": "x-config"}
    return {"EndpointName": "x-qa"}


@pytest.mark.parametrize("code, status, name", [
    # Throttling answers SageMaker and other services give (botocore's standard retry mode lists them).
    ("ThrottlingException", 400, "ServiceThrottled"),
    ("Throttling", 400, "ServiceThrottled"),
    ("TooManyRequestsException", 429, "ServiceThrottled"),
    # Server-side failures.
    ("InternalFailure", 500, "ServiceUnavailable"),
    ("ServiceUnavailable", 503, "ServiceUnavailable"),
    # Permanent: a retry cannot help.
    ("ResourceLimitExceeded", 400, "QuotaExceeded"),
    ("AccessDeniedException", 400, "AccessDenied"),
    ("ValidationException", 400, "RequestRejected"),
    ("ResourceInUse", 400, "RequestRejected"),
])
def test_aws_errors_get_names_a_retry_can_tell_apart(code, status, name):
    error = sagemaker_error("CreateTrainingJob", code, "message", status)
    named = aws_errors.classify(error)
    assert type(named).__name__ == name
    assert (name in aws_errors.RETRYABLE) == (name in ("ServiceThrottled", "ServiceUnavailable"))
    assert f"({code})" in str(named)


def test_connection_failures_are_transient():
    assert isinstance(aws_errors.classify(EndpointConnectionError(endpoint_url="https://api.sagemaker")),
                      aws_errors.ServiceUnavailable)
    assert isinstance(aws_errors.classify(ReadTimeoutError(endpoint_url="https://api.sagemaker")),
                      aws_errors.ServiceUnavailable)


def test_the_decorator_renames_what_escapes_a_handler():
    error = sagemaker_error("CreateEndpoint", "ResourceLimitExceeded", ENDPOINT_QUOTA)

    @aws_errors.named_aws_errors
    def handler(event, context):
        raise error

    with pytest.raises(aws_errors.QuotaExceeded) as raised:
        handler({}, None)
    assert raised.value.__cause__ is error


def test_a_quota_error_names_the_quota_and_the_region():
    detail = str(sagemaker_error("CreateTrainingJob", "ResourceLimitExceeded", TRAINING_QUOTA))
    explanation = explain("TrainXGBoost", "QuotaExceeded", _lambda_cause("QuotaExceeded", detail), region="eu-west-1")
    assert "'ml.p3.2xlarge for training job usage' in eu-west-1 is 0 Instances" in explanation.summary
    assert "CreateTrainingJob" in explanation.summary
    assert "Request an increase of 'ml.p3.2xlarge for training job usage' for eu-west-1" in explanation.action
    assert "Service Quotas" in explanation.action


def test_an_endpoint_quota_error_points_at_the_endpoint_instance_type():
    detail = str(sagemaker_error("CreateEndpoint", "ResourceLimitExceeded", ENDPOINT_QUOTA))
    explanation = explain("CreateQAEndpoint", "QuotaExceeded", _lambda_cause("QuotaExceeded", detail), region="us-east-1")
    assert "'ml.m4.xlarge for endpoint usage' in us-east-1" in explanation.summary
    assert "EndpointInstanceType" in explanation.action


def test_access_denied_names_the_missing_permission():
    message = ("User: arn:aws:sts::123456789012:assumed-role/car-start-training-role/car-start-training is not "
               "authorized to perform: sagemaker:CreateTrainingJob on resource: arn:aws:sagemaker:us-east-1:"
               "123456789012:training-job/car-1-train because no identity-based policy allows the "
               "sagemaker:CreateTrainingJob action")
    detail = str(sagemaker_error("CreateTrainingJob", "AccessDeniedException", message))
    explanation = explain("TrainXGBoost", "AccessDenied", _lambda_cause("AccessDenied", detail))
    assert explanation.summary == ("arn:aws:sts::123456789012:assumed-role/car-start-training-role/car-start-training "
                                   "may not call sagemaker:CreateTrainingJob on arn:aws:sagemaker:us-east-1:"
                                   "123456789012:training-job/car-1-train.")
    assert explanation.action.startswith("Grant sagemaker:CreateTrainingJob on arn:aws:sagemaker:")


def test_an_explicit_deny_is_for_the_administrator():
    detail = str(sagemaker_error("CreateTrainingJob", "AccessDeniedException", EXPLICIT_DENY))
    explanation = explain("TrainXGBoost", "AccessDenied", _lambda_cause("AccessDenied", detail))
    assert "MysfitsNotbookRole" in explanation.summary
    assert "explicit deny" in explanation.action and "administrator" in explanation.action


def test_an_approval_window_that_ran_out_is_said_in_words():
    # On AWS the Cause of a task-token timeout is "" (issue 14).
    explanation = explain("RequestApproval", "States.Timeout", "", approval_window_seconds=86400)
    assert explanation.summary == ("Nobody approved or rejected the model within the approval window (1 day); the "
                                   "links in the approval email have expired.")
    assert "Upload the file again" in explanation.action


@pytest.mark.parametrize("cause", ["", None])
def test_an_empty_cause_still_gives_a_sentence(cause):
    explanation = explain("DeployProduction", "Lambda.Unknown", cause)
    assert ": ." not in explanation.summary and not explanation.summary.endswith(": ")
    notice = failure_notice("run-1", {"state": "SomeState", "error": "SomethingOdd", "cause": cause})
    assert "SomeState failed with SomethingOdd; AWS gave no further details." in notice["message"]
    assert "Details: none were given" in notice["message"]
    assert ": ." not in notice["message"]


def test_a_glue_failure_quotes_the_job_runs_message():
    # The cause of a failed glue:startJobRun.sync is the job run (GetJobRun's JobRun) as JSON.
    cause = json.dumps({"JobRunState": "FAILED", "ErrorMessage": "input line 12: 7 fields, the spec has 6"})
    explanation = explain("PreprocessWithGlue", "States.TaskFailed", cause)
    assert explanation.summary == "The Glue job failed: input line 12: 7 fields, the spec has 6"


def test_throttling_that_outlasted_the_retries_says_try_later():
    detail = str(sagemaker_error("DescribeEndpoint", "ThrottlingException", "Rate exceeded"))
    explanation = explain("CheckQAEndpoint", "ServiceThrottled", _lambda_cause("ServiceThrottled", detail))
    assert "throttling" in explanation.summary and "Rate exceeded" in explanation.summary
    assert "later" in explanation.action


@pytest.mark.parametrize("seconds, words", [(86400, "1 day"), (172800, "2 days"), (3600, "1 hour"), (300, "5 minutes"),
                                            (90, "90 seconds"), (1, "1 second"), (None, "the configured time")])
def test_durations_in_words(seconds, words):
    assert duration_in_words(seconds) == words


@pytest.mark.parametrize("action, line", [
    ("deleted", "QA endpoint x-qa: deleted."),
    ("pending", "QA endpoint x-qa: still being created; a cleanup workflow deletes it"),
    ("none_named", "QA endpoint: none was created."),
    ("refused", "NOT deleted"),
])
def test_the_email_says_what_became_of_the_qa_endpoint(action, line):
    notice = failure_notice("run-1", {"state": "RunQATests", "error": "QualityBelowThreshold",
                                      "cause": _lambda_cause("QualityBelowThreshold", "accuracy 0.5 < 0.95")},
                            qa_endpoint="x-qa", qa_action=action)
    assert line in notice["message"]
    assert notice["subject"] == "Pipeline run run-1 failed in RunQATests"
    assert "Production: not changed by this run." in notice["message"]


def test_the_duplicate_name_text_counts_as_already_exists():
    from pipeline_common.sagemaker import is_already_exists

    assert is_already_exists(sagemaker_error("CreateTrainingJob", "ResourceInUse", DUPLICATE_NAME))


# The Cause of SageMaker.AmazonSageMakerException: the AWS SDK for Java's exception text, shaped as AWS shows it in
# https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-scaling-query-history.html (with and without "; Proxy: ...").
@pytest.mark.parametrize("cause, code, status, message", [
    (f"{TRAINING_QUOTA} (Service: AmazonSageMaker; Status Code: 400; Error Code: ResourceLimitExceeded; "
     "Request ID: request-id)", "ResourceLimitExceeded", 400, TRAINING_QUOTA),
    ("Rate exceeded (Service: AmazonSageMaker; Status Code: 400; Error Code: ThrottlingException; Request ID: "
     "b8ed6dfa-e950-447e-a6fa-2ef924ba06a6; Proxy: null)", "ThrottlingException", 400, "Rate exceeded"),
    # The message itself may hold parentheses: only the last group is the SDK's.
    (f"{DUPLICATE_NAME} (Service: AmazonSageMaker; Status Code: 400; Error Code: ResourceInUse; Request ID: x; "
     "Proxy: null)", "ResourceInUse", 400, DUPLICATE_NAME),
    ("We encountered an internal error.\nPlease try again. (Service: AmazonSageMaker; Status Code: 500; "
     "Error Code: InternalFailure; Request ID: x; Proxy: null)", "InternalFailure", 500,
     "We encountered an internal error.\nPlease try again."),
])
def test_a_step_functions_cause_gives_back_the_error_botocore_would_raise(cause, code, status, message):
    error = aws_errors.client_error_from_cause(cause, "CreateTrainingJob")
    assert error.response["Error"] == {"Code": code, "Message": message}
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == status
    reference = sagemaker_error("CreateTrainingJob", code, message, status)
    assert str(error) == str(reference)
    assert type(aws_errors.classify(error)) is type(aws_errors.classify(reference))


@pytest.mark.parametrize("cause", ["", None, "Rate exceeded", '{"errorMessage": "x"}'])
def test_a_cause_that_is_not_an_sdk_error_is_not_read_as_one(cause):
    assert aws_errors.client_error_from_cause(cause, "CreateTrainingJob") is None


def test_a_failed_training_job_quotes_its_failure_reason():
    # The cause of a failed sagemaker:createTrainingJob.sync is the job's DescribeTrainingJob output.
    cause = json.dumps({"TrainingJobName": "car-1-train", "TrainingJobStatus": "Failed", "SecondaryStatus": "Failed",
                        "FailureReason": "AlgorithmError: framework error: \nUserError: num_class is required"})
    explanation = explain("TrainXGBoost", "States.TaskFailed", cause)
    assert explanation.summary == "The training job did not complete: AlgorithmError: framework error: \nUserError: num_class is required"
    assert "/aws/sagemaker/TrainingJobs" in explanation.action


def test_a_stopped_training_job_without_a_reason_says_it_was_stopped():
    cause = json.dumps({"TrainingJobName": "car-1-train", "TrainingJobStatus": "Stopped", "SecondaryStatus": "Stopped",
                        "HyperParameters": {"num_round": "200"}})
    notice = failure_notice("run-1", {"state": "TrainXGBoost", "error": "States.TaskFailed", "cause": cause})
    assert "The training job did not complete: training job car-1-train ended Stopped (Stopped)" in notice["message"]
    assert "num_round" not in notice["message"]


def test_a_refused_request_says_a_retry_cannot_help():
    detail = str(sagemaker_error("CreateTrainingJob", "ValidationException", "Could not assume role arn:aws:iam::1:role/x."))
    explanation = explain("TrainXGBoost", "RequestRejected", _lambda_cause("RequestRejected", detail))
    assert explanation.summary == "AWS refused CreateTrainingJob as invalid: Could not assume role arn:aws:iam::1:role/x."
    assert "A retry cannot help" in explanation.action


def _lambda_cause(error_type: str, message: str) -> str:
    """A Lambda failure's Cause as Step Functions records it."""
    return json.dumps({"errorMessage": message, "errorType": error_type, "stackTrace": []})


def test_a_model_worse_than_production_is_said_in_words():
    detail = ("QA accuracy 0.9300 is 0.0500 below production car-evaluation's 0.9800 on the same 60 held-out rows "
              "(at most 0.0100 allowed; 3 rows answered differently); report: s3://a/runs/r/qa/report.json")
    explanation = explain("RunQATests", "WorseThanProduction", _lambda_cause("WorseThanProduction", detail))
    assert explanation.summary == f"The new model is worse than the one in production: {detail}"
    assert "MaxRegressionAgainstProduction" in explanation.action and "Production keeps serving" in explanation.action


@pytest.mark.parametrize("reason, expected", [
    ("Rejected from the command line (REJECT=1).", "The reviewer rejected the model: Rejected from the command line (REJECT=1)."),
    ("metrics look off", "The reviewer rejected the model: metrics look off."),
    ("", "The reviewer rejected the model: no reason was given."),
])
def test_a_rejection_quotes_the_reason_with_one_full_stop(reason, expected):
    # REJECT=1's own reason ends with a full stop; the email had shown "REJECT=1).." (issue 23).
    assert explain("RequestApproval", "ApprovalRejected", reason).summary == expected


# The errors a rollback can meet: it resolves its dataset, asks for confirmation and deploys.
ROLLBACK_FAILURES = [
    ("DeployProduction", "QuotaExceeded", "An error occurred (ResourceLimitExceeded) when calling the "
     "CreateEndpointConfig operation: The account-level service limit 'ml.m5.large for endpoint usage' is 2 "
     "Instances, with current utilization of 2 Instances and a request delta of 1 Instances."),
    ("DeployProduction", "AccessDenied", "An error occurred (AccessDeniedException) when calling the UpdateEndpoint "
     "operation: User: arn:aws:sts::1:assumed-role/r/f is not authorized to perform: sagemaker:UpdateEndpoint"),
    ("CheckProduction", "ServiceThrottled", "Rate exceeded"),
    ("RequestApproval", "States.Timeout", ""),
    ("RequestApproval", "ApprovalRejected", "version 1 is the broken one"),
    ("ResolveDataset", "UnknownDataset", "no spec for houses"),
    ("ResolveDataset", "DatasetSpecInvalid", "label missing"),
    ("CheckProduction", "ProductionRolledBack", "alarm ModelLatency"),
    ("CheckProduction", "ProductionEndpointFailed", "Failed"),
    ("CheckProduction", "WaitTimeExpired", "waited 3600 s"),
    ("PrepareRollback", "VersionNotApproved", "version 7 is Rejected"),
    ("PrepareRollback", "Mystery", ""),
]


@pytest.mark.parametrize("state, error, cause", ROLLBACK_FAILURES)
def test_a_rollbacks_failure_email_never_asks_for_an_upload_or_names_a_qa_endpoint(state, error, cause):
    """A rollback has no data file and no QA endpoint; its email once said "upload again" and
    "QA endpoint None" (issue 23). The run's own email is unchanged."""
    notice = failure_notice("rollback-1", {"state": state, "error": error, "cause": cause}, region="eu-west-1",
                            approval_window_seconds=86400, qa_endpoint=None, qa_action="none_named", rollback=True)
    message = notice["message"]
    assert "upload" not in message.lower() and "QA endpoint" not in message
    assert "this rollback" in message and "this run" not in message
    if error != "ApprovalRejected":
        assert "rollback again" in message
    run = failure_notice("run-1", {"state": state, "error": error, "cause": cause}, region="eu-west-1",
                         approval_window_seconds=86400, qa_endpoint="run-1-qa", qa_action="deleted")
    assert "upload" in run["message"].lower() and "QA endpoint run-1-qa: deleted." in run["message"]


def test_a_rejected_rollback_says_production_keeps_its_version():
    explanation = explain("RequestApproval", "ApprovalRejected", "not now", retry=ROLLBACK)
    assert explanation.summary == "The reviewer rejected the rollback: not now."
    assert explanation.action == "Nothing to undo: production keeps the version it serves."
