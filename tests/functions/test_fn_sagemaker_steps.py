"""recover_training, create_qa_endpoint, check_status: the SageMaker steps the
state machine decides through Lambdas, so that a retried create is safe, a
permanent error is named as one, and every wait has an end."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.stub import Stubber

from lambda_fixtures import ACCOUNT, REGION, ROLE_ARN, TABLE, make_run

PRODUCTION = "car-evaluation"
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def training_request(name: str = "car-0123456789ab-train", output: str = "s3://artifacts/runs/car/training/") -> dict:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
                                   "TrainingInputMode": "File"},
        "RoleArn": ROLE_ARN,
        "HyperParameters": {"objective": "multi:softmax", "num_class": "4"},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": "s3://artifacts/runs/car/data/train/",
            "S3DataDistributionType": "FullyReplicated"}}, "ContentType": "text/csv"}],
        "OutputDataConfig": {"S3OutputPath": output},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "EnableManagedSpotTraining": False,
    }


def described_job(request: dict, status: str = "InProgress", created: datetime = NOW, **extra) -> dict:
    return {**request, "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{request['TrainingJobName']}",
            "TrainingJobStatus": status, "SecondaryStatus": "Training", "CreationTime": created,
            "ModelArtifacts": {"S3ModelArtifacts": ""}, **extra}


# ------------------------------------------------------------------ recover_training

@pytest.fixture
def recover(load_function):
    return load_function("recover_training")


def sdk_cause(code: str, message: str, status: int = 400) -> str:
    """The Cause Step Functions gives with SageMaker.AmazonSageMakerException: the AWS SDK for Java's
    exception text (its shape as AWS shows it in
    https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-scaling-query-history.html). A Retry sees only the
    name, never the code in the Cause: a throttled training job's state, shown in
    https://github.com/aws/aws-step-functions-data-science-sdk-python/issues/191, is this name with
    ThrottlingException in its Cause; and a .sync integration's Cause as Step Functions records it, "...
    (Service: AWSStepFunctions; Status Code: 400; Error Code: AccessDeniedException; Request ID: ...; Proxy: null)",
    https://github.com/serverless-operations/serverless-step-functions/issues/385."""
    return (f"{message} (Service: AmazonSageMaker; Status Code: {status}; Error Code: {code}; "
            "Request ID: 5f2d3c1a-0b1e-4c3a-9a57-1d2e3f4a5b6c; Proxy: null)")


def caught(request: dict, cause: str, previous: dict | None = None) -> dict:
    """The execution state RecoverTraining receives after TrainXGBoost's Catch."""
    state = {"run": make_run(), "plan": {"training": request},
             "training_error": {"Error": "SageMaker.AmazonSageMakerException", "Cause": cause}}
    if previous is not None:
        state["training"] = previous
    return state


class Draws:
    """A random source that remembers the caps full jitter drew under, and draws the cap itself."""

    def __init__(self):
        self.caps = []

    def uniform(self, low, high):
        self.caps.append(high)
        return high


NOT_FOUND = ("ValidationException", "Requested resource not found.")
THROTTLED_CAUSE = sdk_cause("ThrottlingException", "Rate exceeded")
# https://github.com/gabehollombe-aws/jupyter-notebooks/issues/1
QUOTA_CAUSE = sdk_cause("ResourceLimitExceeded",
                        "The account-level service limit 'ml.p3.2xlarge for training job usage' is 0 Instances, with "
                        "current utilization of 0 Instances and a request delta of 1 Instances. Please contact AWS "
                        "support to request an increase for this limit.")


def test_a_job_a_lost_answer_left_is_waited_for_within_its_stopping_condition(recover):
    """CreateTrainingJob made the job, but its answer was lost (a 500): the run waits for that job."""
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    request = training_request()
    earlier = NOW - timedelta(minutes=3)
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_training_job", described_job(request, created=earlier))
        result = recover.recover_training(sagemaker, caught(request, sdk_cause("InternalFailure", "Internal error", 500)))
        stub.assert_no_pending_responses()
    assert result == {"action": "wait", "attempts": 0, "training_job_name": request["TrainingJobName"],
                      "wait_until": (earlier + timedelta(seconds=3600 + recover.WAIT_MARGIN_SECONDS)).isoformat().replace("+00:00", "Z"),
                      "retry_in_seconds": None}


def test_a_retry_meeting_its_own_job_name_waits_for_that_job(recover):
    # SageMaker's answer to a duplicate name (https://github.com/aws/amazon-sagemaker-examples/pull/3108).
    cause = sdk_cause("ResourceInUse", "Training job names must be unique within an AWS account and region, and a "
                      "training job with this name already exists (arn:aws:sagemaker:us-east-1:123456789012:training-job/x)")
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    request = training_request()
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_training_job", described_job(request))
        result = recover.recover_training(sagemaker, caught(request, cause, previous={
            "action": "retry", "attempts": 2, "training_job_name": request["TrainingJobName"]}))
    assert (result["action"], result["attempts"]) == ("wait", 2)


def test_spot_training_is_waited_for_as_long_as_it_may_wait(recover):
    request = {**training_request(), "EnableManagedSpotTraining": True,
               "StoppingCondition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}}
    assert recover.wait_until(NOW, request["StoppingCondition"]) == (
        NOW + timedelta(seconds=7200 + recover.WAIT_MARGIN_SECONDS)).isoformat().replace("+00:00", "Z")


def test_a_job_of_the_same_name_from_elsewhere_is_refused(recover):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    request = training_request()
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_training_job", described_job(training_request(output="s3://other/place/")))
        with pytest.raises(recover.TrainingJobConflict, match="not this run's"):
            recover.recover_training(sagemaker, caught(request, sdk_cause("ResourceInUse", "already exists")))


@pytest.mark.parametrize("code, status", [("ThrottlingException", 400), ("InternalFailure", 500),
                                          ("ServiceUnavailable", 503)])
def test_throttling_and_server_errors_are_retried_with_a_growing_backoff(recover, code, status):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    request = training_request()
    draws, previous, answers = Draws(), None, []
    with Stubber(sagemaker) as stub:
        for _ in range(recover.MAX_RETRIES):
            stub.add_client_error("describe_training_job", *NOT_FOUND)
            previous = recover.recover_training(sagemaker, caught(request, sdk_cause(code, "try later", status), previous),
                                                rng=draws)
            answers.append(previous)
    assert [a["action"] for a in answers] == ["retry"] * recover.MAX_RETRIES
    assert [a["attempts"] for a in answers] == list(range(1, recover.MAX_RETRIES + 1))
    # Full jitter under 10, 20, 40, 80, 160 s: the draw is the wait (here the cap itself).
    assert draws.caps == [10, 20, 40, 80, 160]
    assert [a["retry_in_seconds"] for a in answers] == [10, 20, 40, 80, 160]
    assert all(a["training_job_name"] == request["TrainingJobName"] for a in answers)


def test_the_backoff_never_exceeds_its_cap(recover):
    assert recover.backoff_seconds(12, Draws()) == recover.RETRY_MAX_SECONDS


def test_throttling_past_the_last_attempt_fails_as_throttled(recover):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    request = training_request()
    last = {"action": "retry", "attempts": recover.MAX_RETRIES, "training_job_name": request["TrainingJobName"]}
    with Stubber(sagemaker) as stub:
        stub.add_client_error("describe_training_job", *NOT_FOUND)
        with pytest.raises(Exception) as raised:
            recover.recover_training(sagemaker, caught(request, THROTTLED_CAUSE, last))
    assert type(raised.value).__name__ == "ServiceThrottled"
    assert str(raised.value) == "An error occurred (ThrottlingException) when calling the CreateTrainingJob operation: Rate exceeded"


def test_an_earlier_runs_attempts_do_not_count(recover):
    """`training` from another job name is not this training's retry count."""
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    request = training_request()
    with Stubber(sagemaker) as stub:
        stub.add_client_error("describe_training_job", *NOT_FOUND)
        result = recover.recover_training(sagemaker, caught(request, THROTTLED_CAUSE, {
            "attempts": recover.MAX_RETRIES, "training_job_name": "someone-else-train"}), rng=Draws())
    assert (result["action"], result["attempts"]) == ("retry", 1)


@pytest.mark.parametrize("cause, name, says", [
    (QUOTA_CAUSE, "QuotaExceeded", "'ml.p3.2xlarge for training job usage' is 0 Instances"),
    (sdk_cause("AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/car-StateMachineRole-1A2B/s is "
               "not authorized to perform: sagemaker:CreateTrainingJob on resource: arn:aws:sagemaker:us-east-1:"
               "123456789012:training-job/car-0123456789ab-train"), "AccessDenied", "is not authorized to perform"),
    # What SageMaker says to a role it cannot assume (localmode.workers.training.check_role sends the same).
    (sdk_cause("ValidationException", "Could not assume role arn:aws:iam::123456789012:role/x. Please ensure that the "
               "role exists and allows principal 'sagemaker.amazonaws.com' to assume the role."), "RequestRejected",
     "Could not assume role"),
    # Not an SDK error text: nothing says a retry could help.
    ("something else entirely", "RequestRejected", "something else entirely"),
])
def test_permanent_errors_fail_at_once_under_their_name(recover, cause, name, says):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_client_error("describe_training_job", *NOT_FOUND)
        with pytest.raises(Exception) as raised:
            recover.recover_training(sagemaker, caught(training_request(), cause))
    assert type(raised.value).__name__ == name
    # botocore's own wording, which the failure email reads the quota, permission or reason from.
    assert str(raised.value).startswith("An error occurred (") and "when calling the CreateTrainingJob operation: " in str(raised.value)
    assert says in str(raised.value)


def test_a_throttled_look_for_the_job_is_retried_like_the_create(recover):
    """Whether the job exists is unknown then: TrainXGBoost runs again and meets ResourceInUse if it does."""
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_client_error("describe_training_job", "ThrottlingException", "Rate exceeded")
        result = recover.recover_training(sagemaker, caught(training_request(), QUOTA_CAUSE), rng=Draws())
    assert (result["action"], result["attempts"]) == ("retry", 1)


def test_a_denied_look_for_the_job_fails_naming_the_permission(recover, context, monkeypatch):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    monkeypatch.setattr(recover.boto3, "client", lambda *a, **k: sagemaker)
    with Stubber(sagemaker) as stub:
        stub.add_client_error("describe_training_job", "AccessDeniedException", "User: x is not authorized to perform: "
                              "sagemaker:DescribeTrainingJob on resource: y")
        with pytest.raises(Exception) as raised:
            recover.lambda_handler(caught(training_request(), THROTTLED_CAUSE), context)
    assert type(raised.value).__name__ == "AccessDenied"


@pytest.mark.parametrize("state", [{}, {"plan": {"training": {"TrainingJobName": "bad name!"}}, "training_error": {}},
                                   {"plan": {"training": training_request()}}])
def test_a_malformed_event_is_refused(recover, state):
    with pytest.raises(recover.InvalidEvent):
        recover.recover_training(None, state)


def test_with_moto_the_job_a_lost_answer_left_is_found(recover, aws, context):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    request = training_request()
    sagemaker.create_training_job(**request)
    result = recover.lambda_handler(caught(request, sdk_cause("InternalFailure", "Internal error", 500)), context)
    assert (result["action"], result["training_job_name"]) == ("wait", request["TrainingJobName"])
    assert len(sagemaker.list_training_jobs()["TrainingJobSummaries"]) == 1


# ------------------------------------------------------------------ create_qa_endpoint

@pytest.fixture
def create_qa(load_function):
    return load_function("create_qa_endpoint")


def endpoint_description(name: str, status: str, config: str, created: datetime = NOW, **extra) -> dict:
    return {"EndpointName": name, "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{name}",
            "EndpointConfigName": config, "EndpointStatus": status, "CreationTime": created,
            "LastModifiedTime": created, **extra}


def test_the_qa_endpoint_is_created_once(create_qa):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_client_error("describe_endpoint", "ValidationException", 'Could not find endpoint "x-qa".')
        stub.add_response("create_endpoint", {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/x-qa"}, {"EndpointName": "x-qa", "EndpointConfigName": "x-config"})
        result = create_qa.create_qa_endpoint(sagemaker, "x-qa", "x-config", 600, PRODUCTION, now=NOW)
        stub.add_response("describe_endpoint", endpoint_description("x-qa", "Creating", "x-config"))
        again = create_qa.create_qa_endpoint(sagemaker, "x-qa", "x-config", 600, PRODUCTION, now=NOW + timedelta(minutes=1))
        stub.assert_no_pending_responses()
    assert result == again == {"endpoint_name": "x-qa", "wait_until": "2025-01-02T03:14:05Z"}


def test_an_endpoint_of_that_name_on_another_config_is_refused(create_qa):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_endpoint", endpoint_description("x-qa", "InService", "someone-elses-config"))
        with pytest.raises(create_qa.QAEndpointConflict):
            create_qa.create_qa_endpoint(sagemaker, "x-qa", "x-config", 600, PRODUCTION)


def test_production_is_never_created_as_a_qa_endpoint(create_qa):
    with pytest.raises(Exception, match="named like production"):
        create_qa.create_qa_endpoint(None, PRODUCTION, "x-config", 600, PRODUCTION)


# ------------------------------------------------------------------ check_status

@pytest.fixture
def check(load_function):
    return load_function("check_status")


def later(minutes: int) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat()


def stubbed(operation: str, response: dict):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    stub = Stubber(sagemaker)
    stub.add_response(operation, response)
    stub.activate()
    return sagemaker


def test_training_in_progress_is_waited_for(check):
    sagemaker = stubbed("describe_training_job", described_job(training_request()))
    resource = {"training_job_name": "car-0123456789ab-train", "wait_until": later(60)}
    result = check.check_status(sagemaker, None, None, {"kind": "training_job", "resource": resource}, now=NOW)
    assert result == {**resource, "status": "InProgress", "ready": False, "model_artifacts": None}


def test_completed_training_hands_on_its_model(check):
    artifacts = "s3://artifacts/runs/car/training/car-0123456789ab-train/output/model.tar.gz"
    sagemaker = stubbed("describe_training_job", described_job(training_request(), "Completed",
                                                               ModelArtifacts={"S3ModelArtifacts": artifacts}))
    resource = {"training_job_name": "car-0123456789ab-train", "wait_until": later(60)}
    result = check.check_status(sagemaker, None, None, {"kind": "training_job", "resource": resource}, now=NOW)
    assert result["ready"] is True and result["model_artifacts"] == artifacts


def test_failed_training_says_why(check):
    sagemaker = stubbed("describe_training_job", described_job(training_request(), "Failed",
                                                               FailureReason="AlgorithmError: no label column"))
    resource = {"training_job_name": "car-0123456789ab-train", "wait_until": later(60)}
    with pytest.raises(check.TrainingJobFailed, match="AlgorithmError: no label column"):
        check.check_status(sagemaker, None, None, {"kind": "training_job", "resource": resource}, now=NOW)


@pytest.mark.parametrize("status", ["OutOfService", "Creating", "SystemUpdating"])
def test_an_endpoint_that_never_gets_in_service_ends_the_wait(check, status):
    resource = {"endpoint_name": "x-qa", "wait_until": later(60)}
    event = {"kind": "qa_endpoint", "resource": resource}
    sagemaker = stubbed("describe_endpoint", endpoint_description("x-qa", status, "x-config"))
    assert check.check_status(sagemaker, None, None, event, now=NOW + timedelta(minutes=59))["ready"] is False
    sagemaker = stubbed("describe_endpoint", endpoint_description("x-qa", status, "x-config"))
    with pytest.raises(check.WaitTimeExpired, match=f"still {status}"):
        check.check_status(sagemaker, None, None, event, now=NOW + timedelta(minutes=60))


def test_a_failed_qa_endpoint_says_why(check):
    # SageMaker's FailureReason when the role cannot pull an image
    # (https://github.com/yuyasugano/terraform-sagemaker-sample-1/issues/1).
    reason = ("Please make sure all images included in the model for the production variant variant-1 exist, and that "
              "the execution role used to create the model has permissions to access them.")
    sagemaker = stubbed("describe_endpoint", endpoint_description("x-qa", "Failed", "x-config", FailureReason=reason))
    with pytest.raises(check.QAEndpointFailed, match="make sure all images"):
        check.check_status(sagemaker, None, None,
                           {"kind": "qa_endpoint", "resource": {"endpoint_name": "x-qa", "wait_until": later(60)}}, now=NOW)


@pytest.fixture
def lock(load_function, state_table):
    """The production lock, written by the real deploy_production code."""
    deploy = load_function("deploy_production")

    def claim(run: dict) -> None:
        deploy.claim_production(state_table, TABLE, PRODUCTION, run)

    return claim


def production_event(run: dict) -> dict:
    return {"kind": "production", "run": run, "endpoint_config_name": f"{run['run_id']}-config",
            "resource": {"endpoint_name": PRODUCTION, "action": "updated", "wait_until": later(70)}}


def test_production_on_this_runs_config_is_ready(check, state_table, lock):
    run = make_run()
    lock(run)
    sagemaker = stubbed("describe_endpoint", endpoint_description(PRODUCTION, "InService", f"{run['run_id']}-config"))
    result = check.check_status(sagemaker, state_table, TABLE, production_event(run), now=NOW)
    assert result["ready"] is True and result["action"] == "updated"


def test_back_on_the_old_config_while_this_run_holds_the_lock_is_a_rollback(check, state_table, lock):
    run = make_run()
    lock(run)
    sagemaker = stubbed("describe_endpoint", endpoint_description(PRODUCTION, "InService", "previous-config"))
    with pytest.raises(check.ProductionRolledBack, match="previous model is still serving"):
        check.check_status(sagemaker, state_table, TABLE, production_event(run), now=NOW)


def test_on_a_newer_runs_config_is_superseded_not_a_rollback(check, state_table, lock):
    run = make_run("car-0123456789ab", started_at="2025-01-02T03:04:05.678Z")
    newer = make_run("car-ba9876543210", started_at="2025-01-02T03:30:00.000Z")
    lock(run)
    lock(newer)  # the newer upload reached DeployProduction later and claimed production
    sagemaker = stubbed("describe_endpoint", endpoint_description(PRODUCTION, "InService", f"{newer['run_id']}-config"))
    with pytest.raises(check.Superseded, match=f"run {newer['run_id']}"):
        check.check_status(sagemaker, state_table, TABLE, production_event(run), now=NOW)


def test_this_runs_update_in_progress_is_waited_for_even_after_a_newer_claim(check, state_table, lock):
    run = make_run("car-0123456789ab", started_at="2025-01-02T03:04:05.678Z")
    lock(run)
    lock(make_run("car-ba9876543210", started_at="2025-01-02T03:30:00.000Z"))
    sagemaker = stubbed("describe_endpoint", endpoint_description(
        PRODUCTION, "Updating", "previous-config", PendingDeploymentSummary={"EndpointConfigName": f"{run['run_id']}-config"}))
    assert check.check_status(sagemaker, state_table, TABLE, production_event(run), now=NOW)["ready"] is False


def test_a_production_update_past_its_limit_ends_the_wait(check, state_table, lock):
    run = make_run()
    lock(run)
    sagemaker = stubbed("describe_endpoint", endpoint_description(
        PRODUCTION, "Updating", "previous-config", PendingDeploymentSummary={"EndpointConfigName": f"{run['run_id']}-config"}))
    with pytest.raises(check.WaitTimeExpired, match="BakeSeconds"):
        check.check_status(sagemaker, state_table, TABLE, production_event(run), now=NOW + timedelta(minutes=70))


@pytest.mark.parametrize("event", [{}, {"kind": "nope", "resource": {}}, {"kind": "qa_endpoint", "resource": {"endpoint_name": "x-qa"}},
                                   {"kind": "production", "resource": {"endpoint_name": "p", "wait_until": later(1)}}])
def test_a_malformed_event_is_refused(check, event):
    with pytest.raises(Exception) as raised:
        check.check_status(None, None, TABLE, event, now=NOW)
    assert type(raised.value).__name__ == "InvalidEvent"


def test_the_handler_reads_its_table_from_the_environment(check, monkeypatch, context, aws):
    monkeypatch.setenv("STATE_TABLE", TABLE)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_model(ModelName="m", ExecutionRoleArn=ROLE_ARN, Containers=[{"Image": "xgboost"}])
    sagemaker.create_endpoint_config(EndpointConfigName="x-config", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sagemaker.create_endpoint(EndpointName="x-qa", EndpointConfigName="x-config")
    result = check.lambda_handler({"kind": "qa_endpoint", "resource": {"endpoint_name": "x-qa", "wait_until": "2999-01-01T00:00:00Z"}},
                                  context)
    assert result["ready"] is True and result["status"] == "InService"
