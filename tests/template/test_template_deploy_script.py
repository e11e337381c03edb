"""scripts/deploy.py: the one-command deploy and teardown, with AWS behind moto
and the external commands (sam) recorded instead of run."""
from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

import template_support  # noqa: F401  (puts scripts/ on sys.path)
import deploy
from template_support import REPO_ROOT

STACK = "car-ml-pipeline"


def outputs_for(artifacts="art-bucket", input_bucket="in-bucket", logs="log-bucket"):
    return {
        "ArtifactsBucketName": artifacts, "InputBucketName": input_bucket, "AccessLogsBucketName": logs,
        "ProductionEndpointName": "car-evaluation", "StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:x",
        "UploadCommand": f"aws s3 cp car.data s3://{input_bucket}/input/car.csv", "ApprovalApiUrl": "https://x",
        "StateTableName": "state-table",
        "ModelPackageGroupName": "car-evaluation", "ProductionEndpointSuffix": "-prod", "DefaultDataset": "car",
    }


def state_table(locks=("car-evaluation",)):
    """The stack's state table with a production lock per endpoint the pipeline deployed."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    dynamodb.create_table(TableName="state-table", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    for endpoint in locks:
        dynamodb.put_item(TableName="state-table", Item={"pk": {"S": f"production#{endpoint}"}, "run_id": {"S": "r"}})
    dynamodb.put_item(TableName="state-table", Item={"pk": {"S": "approval#abc"}, "status": {"S": "pending"}})
    return dynamodb


def stubbed_cloudformation(outputs: dict):
    client = boto3.client("cloudformation", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_response("describe_stacks", {"Stacks": [{
        "StackName": STACK, "CreationTime": "2025-01-01T00:00:00Z", "StackStatus": "CREATE_COMPLETE",
        "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
    }]}, {"StackName": STACK})
    stubber.activate()
    return client


class FakeSession:
    def __init__(self, cloudformation, region="us-east-1"):
        self._cloudformation = cloudformation
        self.region = region

    def client(self, name):
        if name == "cloudformation":
            return self._cloudformation
        return boto3.client(name, region_name=self.region)


def test_the_script_reads_only_outputs_the_template_declares(template):
    assert set(deploy.OUTPUTS_USED) <= set(template["Outputs"])


def test_uploads_land_where_runs_read_them(template, resolver, tmp_path):
    """Every datasets/*.json goes to deps/datasets/<name>.json: where resolve_dataset looks for a run's
    spec (pipeline_common.datasets.spec_key) and where the Glue job's default --spec points."""
    from pipeline_common.datasets import SPEC_PREFIX, spec_key

    job_args = template["Resources"]["PreprocessJob"]["Properties"]["DefaultArguments"]
    assert job_args["--spec"] == {"Fn::Sub": f"s3://${{ArtifactsBucket}}/{deploy.SPEC_PREFIX}${{DefaultDataset}}.json"}
    assert deploy.SPEC_PREFIX == SPEC_PREFIX
    specs = deploy.dataset_specs()
    assert "car" in specs and all(path.parent == REPO_ROOT / "datasets" for path in specs.values())
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="art-bucket")
        uploaded = deploy.upload_glue_dependencies(s3, outputs_for(), STACK, specs)
        assert uploaded == [f"s3://art-bucket/{spec_key(name)}" for name in sorted(specs)]
        for name, path in specs.items():
            assert s3.get_object(Bucket="art-bucket", Key=spec_key(name))["Body"].read() == path.read_bytes()


def test_a_stack_without_the_outputs_is_refused_by_name():
    with pytest.raises(deploy.DeployError, match="no output ArtifactsBucketName"):
        deploy.upload_glue_dependencies(None, {}, STACK, deploy.dataset_specs())


@pytest.mark.parametrize("file_name, content, problem", [
    ("wine.json", {"name": "red-wine"}, "wine.json names dataset 'red-wine'"),
    ("Wine.json", {"name": "Wine"}, "Wine.json names dataset 'Wine'"),
    ("wine.json", ["not", "an", "object"], "wine.json is not a JSON object"),
])
def test_a_misnamed_spec_stops_the_deploy_before_anything_is_uploaded(tmp_path, file_name, content, problem):
    """A run finds its spec by the name the upload key says; a file named otherwise would never be found
    (or would deploy to another dataset's endpoint)."""
    (tmp_path / "car.json").write_bytes((REPO_ROOT / "datasets" / "car.json").read_bytes())
    (tmp_path / file_name).write_text(json.dumps(content))
    with pytest.raises(deploy.DeployError, match=problem):
        deploy.dataset_specs(tmp_path)


def test_a_wide_spec_deploys_and_a_broken_one_stops_the_deploy_before_anything_is_uploaded(tmp_path):
    """40 features once stopped the deploy (their schema is longer than SageMaker's 1024 characters per
    container environment value); they are served under short names by JSON requests now
    (dataset_spec.serving). A spec the Glue job would refuse still stops it, naming the file."""
    (tmp_path / "car.json").write_bytes((REPO_ROOT / "datasets" / "car.json").read_bytes())
    wide = {"name": "wide", "header": "no", "label": "y",
            "columns": [{"name": f"measurement_{i:02d}", "type": "numeric"} for i in range(40)]
            + [{"name": "y", "type": "numeric"}]}
    (tmp_path / "wide.json").write_text(json.dumps(wide))
    assert set(deploy.dataset_specs(tmp_path)) == {"car", "wide"}
    (tmp_path / "wide.json").write_text(json.dumps({**wide, "label": "z"}))
    with pytest.raises(deploy.DeployError, match=r"wide\.json: .*label"):
        deploy.dataset_specs(tmp_path)
    assert set(deploy.dataset_specs(REPO_ROOT / "datasets")) >= {"car", "penguins", "breast-cancer", "diabetes",
                                                                 "digits-wide"}


def test_missing_python_313_stops_before_anything_runs(monkeypatch):
    commands = []
    with pytest.raises(deploy.DeployError, match="needs python3.13 on PATH"):
        deploy.deploy(run=commands.append, which=lambda name: None)
    assert commands == []


def test_deploy_builds_deploys_then_uploads(monkeypatch, tmp_path):
    commands = []
    monkeypatch.setattr(deploy, "check_lambda_python", lambda which: None)
    config = tmp_path / "samconfig.toml"
    config.write_text('version = 0.1\n[default.deploy.parameters]\nstack_name = "car-ml-pipeline"\nregion = "us-east-1"\n')
    monkeypatch.setattr(deploy, "SAMCONFIG", config)
    monkeypatch.setattr(deploy, "samconfig", lambda path=None: deploy.tomllib.loads(config.read_text()))
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="art-bucket")
        session = FakeSession(stubbed_cloudformation(outputs_for()))
        assert deploy.deploy(run=commands.append, session_factory=lambda settings: session) == 0
        keys = [o["Key"] for o in boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket="art-bucket")["Contents"]]
    # sam build && sam deploy, then the Glue job's zip and the specs: sam uploads the job's script only.
    assert [c[c.index("sam") + 1] for c in commands] == ["build", "deploy"]
    assert "--guided" in commands[1], "no saved parameters: the first deploy must ask for them"
    assert keys == sorted([deploy.GLUE_PACKAGE_KEY] + [f"{deploy.SPEC_PREFIX}{name}.json" for name in deploy.dataset_specs()])
    assert f"aws-sam-cli=={deploy.SAM_CLI_VERSION}" in commands[0]


def test_saved_parameters_mean_no_questions():
    settings = deploy.deploy_settings({"default": {"deploy": {"parameters": {
        "stack_name": "s", "parameter_overrides": "NotificationEmail=\"a@b.c\""}}}})
    assert settings["has_parameters"] and settings["stack_name"] == "s"
    assert not deploy.deploy_settings(deploy.samconfig(REPO_ROOT / "samconfig.toml"))["has_parameters"]
    assert deploy.deploy_settings(deploy.samconfig(REPO_ROOT / "samconfig.toml"))["stack_name"] == STACK


def test_samconfig_keeps_the_prefix_the_glue_role_reads(template):
    config = deploy.samconfig(REPO_ROOT / "samconfig.toml")
    params = config["default"]["deploy"]["parameters"]
    assert params["s3_prefix"] == config["default"]["global"]["parameters"]["stack_name"]
    assert params["capabilities"] == "CAPABILITY_IAM"


def test_teardown_deletes_production_empties_every_version_then_sam_delete(monkeypatch, tmp_path):
    """Every dataset's production endpoint goes (the locks name them), and the rollback alarms
    deploy_production created for them; CloudFormation deletes its own two alarms."""
    commands = []
    config = tmp_path / "samconfig.toml"
    config.write_text('version = 0.1\n[default.deploy.parameters]\nstack_name = "car-ml-pipeline"\n')
    monkeypatch.setattr(deploy, "samconfig", lambda path=None: deploy.tomllib.loads(config.read_text()))
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        for bucket in ("art-bucket", "in-bucket", "log-bucket"):
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            for body in (b"v1", b"v2"):
                s3.put_object(Bucket=bucket, Key="runs/a/manifest.json", Body=body)
            s3.delete_object(Bucket=bucket, Key="runs/a/manifest.json")  # leaves a delete marker
        state_table(locks=("car-evaluation", "penguins-prod"))
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        alarm = {"MetricName": "ModelLatency", "Namespace": "AWS/SageMaker", "Statistic": "Average", "Period": 60,
                 "EvaluationPeriods": 1, "Threshold": 1.0, "ComparisonOperator": "GreaterThanThreshold"}
        for name in (f"{STACK}-production-5xx", f"{STACK}-production-penguins-prod-latency", "other-stack-production-x"):
            cloudwatch.put_metric_alarm(AlarmName=name, **alarm)
        deleted = []
        monkeypatch.setattr(deploy, "delete_production_endpoint", lambda client, name: deleted.append(name) or True)
        session = FakeSession(stubbed_cloudformation(outputs_for()))
        prompts = []
        assert deploy.teardown(run=commands.append, session_factory=lambda s: session,
                               confirm=lambda prompt: prompts.append(prompt) or "car-ml-pipeline") == 0
        for bucket in ("art-bucket", "in-bucket", "log-bucket"):
            listing = s3.list_object_versions(Bucket=bucket)
            assert not listing.get("Versions") and not listing.get("DeleteMarkers"), bucket
        remaining = sorted(a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"])
    assert deleted == ["car-evaluation", "penguins-prod"]
    assert "car-evaluation, penguins-prod" in prompts[0]
    assert remaining == [f"{STACK}-production-5xx", "other-stack-production-x"]
    sam_args = commands[-1][commands[-1].index("sam") + 1:]
    assert sam_args[:3] == ["delete", "--stack-name", STACK]


def test_teardown_without_confirmation_deletes_nothing(monkeypatch, tmp_path):
    config = tmp_path / "samconfig.toml"
    config.write_text('version = 0.1\n[default.deploy.parameters]\nstack_name = "car-ml-pipeline"\n')
    monkeypatch.setattr(deploy, "samconfig", lambda path=None: deploy.tomllib.loads(config.read_text()))
    commands = []
    with mock_aws():
        state_table()
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="art-bucket")
        s3.put_object(Bucket="art-bucket", Key="deps/x", Body=b"x")
        session = FakeSession(stubbed_cloudformation(outputs_for()))
        assert deploy.teardown(run=commands.append, session_factory=lambda s: session, confirm=lambda p: "no") == 1
        assert s3.list_objects_v2(Bucket="art-bucket")["KeyCount"] == 1
    assert commands == []


def test_deleting_an_absent_production_endpoint_is_not_an_error():
    with mock_aws():
        sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        assert deploy.delete_production_endpoint(sagemaker, "car-evaluation") is False


def logged_buckets(s3):
    """The stack's three buckets as deployed: versioned, both sources logging into the log bucket,
    whose policy lets the logging service write (template.yaml)."""
    for bucket in ("art-bucket", "in-bucket", "log-bucket"):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_policy(Bucket="log-bucket", Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "S3ServerAccessLogs", "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
        "Action": "s3:PutObject", "Resource": "arn:aws:s3:::log-bucket/*"}]}))
    for source, prefix in (("in-bucket", "input/"), ("art-bucket", "artifacts/")):
        s3.put_bucket_logging(Bucket=source, BucketLoggingStatus={
            "LoggingEnabled": {"TargetBucket": "log-bucket", "TargetPrefix": prefix}})
        s3.put_object(Bucket="log-bucket", Key=f"{prefix}2025-01-01-00-00-00-ABC", Body=b"log line")


def teardown_config(monkeypatch, tmp_path):
    config = tmp_path / "samconfig.toml"
    config.write_text('version = 0.1\n[default.deploy.parameters]\nstack_name = "car-ml-pipeline"\n')
    monkeypatch.setattr(deploy, "samconfig", lambda path=None: deploy.tomllib.loads(config.read_text()))
    monkeypatch.setattr(deploy, "delete_production_endpoint", lambda client, name: False)


def test_teardown_survives_access_logs_that_arrive_after_emptying(monkeypatch, tmp_path):
    """S3 delivers access logs late: one lands after the buckets were emptied and
    CloudFormation fails to delete the log bucket. Teardown stops logging first,
    empties again and deletes again."""
    teardown_config(monkeypatch, tmp_path)
    commands, sleeps = [], []
    with mock_aws():
        state_table()
        s3 = boto3.client("s3", region_name="us-east-1")
        logged_buckets(s3)

        def sam(command):
            commands.append(command)
            if len(commands) == 1:
                # What S3 had in flight lands now, and CloudFormation refuses the non-empty bucket.
                s3.put_object(Bucket="log-bucket", Key="input/2025-01-01-00-05-00-DEF", Body=b"late log line")
                raise deploy.DeployError("`sam delete` failed with exit code 1")
            for bucket in ("art-bucket", "in-bucket", "log-bucket"):
                listing = s3.list_object_versions(Bucket=bucket)
                assert not listing.get("Versions") and not listing.get("DeleteMarkers"), bucket

        session = FakeSession(stubbed_cloudformation(outputs_for()))
        assert deploy.teardown(run=sam, session_factory=lambda s: session, confirm=lambda p: STACK,
                               wait_seconds=30, sleep=sleeps.append) == 0
        # Logging is off at the sources and the log bucket no longer admits the logging service.
        for source in ("in-bucket", "art-bucket"):
            assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=source)
        with pytest.raises(s3.exceptions.ClientError, match="NoSuchBucketPolicy"):
            s3.get_bucket_policy(Bucket="log-bucket")
    assert len(commands) == 2 and sleeps == [30]
    assert all(command[command.index("sam") + 1] == "delete" for command in commands)


def test_teardown_gives_up_with_what_to_do_after_its_attempts(monkeypatch, tmp_path):
    teardown_config(monkeypatch, tmp_path)
    commands = []

    def failing(command):
        commands.append(command)
        raise deploy.DeployError("`sam delete` failed with exit code 1")

    with mock_aws():
        state_table()
        logged_buckets(boto3.client("s3", region_name="us-east-1"))
        session = FakeSession(stubbed_cloudformation(outputs_for()))
        with pytest.raises(deploy.DeployError, match="run teardown once more"):
            deploy.teardown(run=failing, session_factory=lambda s: session, confirm=lambda p: STACK,
                            attempts=3, sleep=lambda seconds: None)
    assert len(commands) == 3


def registry_with(sagemaker, statuses: list[str], group: str = "car-evaluation") -> None:
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    for status in statuses:
        sagemaker.create_model_package(
            ModelPackageGroupName=group, ModelApprovalStatus=status,
            InferenceSpecification={"Containers": [{"Image": "xgboost"}], "SupportedContentTypes": ["text/csv"],
                                    "SupportedResponseMIMETypes": ["text/csv"]},
            CustomerMetadataProperties={"run_id": f"run-{status.lower()}"})


def rollback_setup(monkeypatch, tmp_path, statuses, group="car-evaluation"):
    config = tmp_path / "samconfig.toml"
    config.write_text('version = 0.1\n[default.deploy.parameters]\nstack_name = "car-ml-pipeline"\n')
    monkeypatch.setattr(deploy, "samconfig", lambda path=None: deploy.tomllib.loads(config.read_text()))
    registry_with(boto3.client("sagemaker", region_name="us-east-1"), statuses, group)
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = sfn.create_state_machine(name="x", definition='{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}',
                                   roleArn="arn:aws:iam::123456789012:role/x")["stateMachineArn"]
    return sfn, arn, FakeSession(stubbed_cloudformation({**outputs_for(), "StateMachineArn": arn}))


def test_rollback_starts_the_documented_rollback_input(monkeypatch, tmp_path, capsys):
    with mock_aws():
        sfn, arn, session = rollback_setup(monkeypatch, tmp_path, ["Approved", "Approved"])
        assert deploy.rollback(1, session_factory=lambda s: session, now=lambda: 1700000000) == 0
        [execution] = sfn.list_executions(stateMachineArn=arn)["executions"]
        described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert execution["name"] == "rollback-v1-1700000000"
    assert json.loads(described["input"]) == {"rollback": {"model_package_version": 1, "dataset": "car"}}
    shown = capsys.readouterr().out
    assert "version 2: Approved" in shown and "confirmation email" in shown


def test_rollback_to_a_version_that_is_not_approved_starts_nothing(monkeypatch, tmp_path):
    with mock_aws():
        sfn, arn, session = rollback_setup(monkeypatch, tmp_path, ["Approved", "Rejected"])
        with pytest.raises(deploy.DeployError, match="version 2 of car-evaluation is Rejected"):
            deploy.rollback(2, session_factory=lambda s: session)
        assert sfn.list_executions(stateMachineArn=arn)["executions"] == []


def test_rollback_of_another_dataset_reads_and_names_that_datasets_group(monkeypatch, tmp_path, capsys):
    # penguins' endpoint is penguins<ProductionEndpointSuffix>, and its registry group is named after it.
    with mock_aws():
        sfn, arn, session = rollback_setup(monkeypatch, tmp_path, ["Approved", "Rejected", "Approved"], "penguins-prod")
        assert deploy.rollback(3, session_factory=lambda s: session, now=lambda: 1700000000, dataset="penguins") == 0
        [execution] = sfn.list_executions(stateMachineArn=arn)["executions"]
        described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {"rollback": {"model_package_version": 3, "dataset": "penguins"}}
    assert "roll penguins-prod back to version 3" in capsys.readouterr().out


def test_rollback_of_a_name_that_is_no_dataset_starts_nothing(monkeypatch, tmp_path):
    with mock_aws():
        sfn, arn, session = rollback_setup(monkeypatch, tmp_path, ["Approved"])
        with pytest.raises(deploy.DeployError, match="is not a dataset name"):
            deploy.rollback(1, session_factory=lambda s: session, dataset="Car_Evaluation")
        assert sfn.list_executions(stateMachineArn=arn)["executions"] == []


@pytest.mark.parametrize("argv, expected", [
    (["rollback", "--version", "2"], ((2,), {"list_only": False, "dataset": None})),
    (["rollback", "--version", "3", "--dataset", "penguins"], ((3,), {"list_only": False, "dataset": "penguins"})),
    (["rollback", "--list"], ((None,), {"list_only": True, "dataset": None})),
])
def test_the_rollback_command_passes_its_arguments_on(monkeypatch, argv, expected):
    calls = []
    monkeypatch.setattr(deploy, "rollback", lambda *args, **kwargs: calls.append((args, kwargs)) or 0)
    assert deploy.main(argv) == 0
    assert calls == [expected]


@pytest.mark.parametrize("argv", [["rollback"], ["rollback", "--version", "1", "--list"], ["rollback", "--version", "one"],
                                  ["rollback", "--dataset", "car"]])
def test_a_rollback_without_exactly_one_version_or_list_is_a_usage_error(monkeypatch, argv, capsys):
    monkeypatch.setattr(deploy, "rollback", lambda *a, **k: pytest.fail("nothing may start"))
    with pytest.raises(SystemExit) as exited:
        deploy.main(argv)
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_a_refused_rollback_exits_1_with_the_reason(monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise deploy.DeployError("version 2 of car-evaluation is Rejected: only an Approved version can be rolled back to")

    monkeypatch.setattr(deploy, "rollback", refuse)
    assert deploy.main(["rollback", "--version", "2"]) == 1
    assert capsys.readouterr().err == ("rollback: version 2 of car-evaluation is Rejected: only an Approved version can "
                                       "be rolled back to\n")


class StubbedSfnSession(FakeSession):
    def __init__(self, cloudformation, sfn):
        super().__init__(cloudformation)
        self._sfn = sfn

    def client(self, name):
        return self._sfn if name == "stepfunctions" else super().client(name)


def test_rollback_sends_exactly_one_start_execution_with_the_documented_input(monkeypatch, tmp_path, capsys):
    """The StartExecution request itself, checked by botocore's Stubber against the service model
    (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html): stateMachineArn
    the stack's, a name of 1-80 characters without whitespace or any of < > { } [ ] ? * " # % \\ ^ | ~ ` $ & , ; : /
    (unique per state machine for 90 days: it carries the version and the time), and input the JSON object
    the pipeline's ValidateInput routes to InitializeRollback."""
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:car-ml-pipeline"
    with mock_aws():
        _, _, moto_session = rollback_setup(monkeypatch, tmp_path, ["Approved", "Rejected", "Approved"], "penguins-prod")
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        name = "rollback-v3-1700000000"
        with Stubber(sfn) as stub:
            stub.add_response("start_execution", {"executionArn": f"{machine.replace(':stateMachine:', ':execution:')}:{name}",
                                                  "startDate": "2025-01-01T00:00:00Z"},
                              {"stateMachineArn": machine, "name": name,
                               "input": json.dumps({"rollback": {"model_package_version": 3, "dataset": "penguins"}})})
            session = StubbedSfnSession(stubbed_cloudformation({**outputs_for(), "StateMachineArn": machine}), sfn)
            assert deploy.rollback(3, session_factory=lambda s: session, now=lambda: 1700000000.7,
                                   dataset="penguins") == 0
            stub.assert_no_pending_responses()
    assert 1 <= len(name) <= 80 and not set(name) & set(' <>{}[]?*"#%\\^|~`$&,;:/')
    shown = capsys.readouterr().out
    assert f"started {machine.replace(':stateMachine:', ':execution:')}:{name}" in shown


def test_listing_the_registry_starts_nothing(monkeypatch, tmp_path, capsys):
    with mock_aws():
        _, _, _ = rollback_setup(monkeypatch, tmp_path, ["Approved", "Rejected"])
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        with Stubber(sfn) as stub:  # nothing queued: any Step Functions call fails the test
            session = StubbedSfnSession(stubbed_cloudformation(outputs_for()), sfn)
            assert deploy.rollback(None, list_only=True, session_factory=lambda s: session) == 0
            stub.assert_no_pending_responses()
    shown = capsys.readouterr().out
    assert "version 1: Approved" in shown and "version 2: Rejected" in shown


# Where each name the template builds from the stack name goes: the API, operation and member that take it.
NAME_MEMBERS = {
    ("AWS::Serverless::Function", "FunctionName"): ("lambda", "CreateFunction", ["FunctionName"]),
    ("AWS::Serverless::StateMachine", "Name"): ("stepfunctions", "CreateStateMachine", ["name"]),
    ("AWS::WAFv2::WebACL", "Name"): ("wafv2", "CreateWebACL", ["Name"]),
    ("AWS::WAFv2::WebACL", "VisibilityConfig.MetricName"): ("wafv2", "CreateWebACL", ["VisibilityConfig", "MetricName"]),
    ("AWS::Glue::Job", "Name"): ("glue", "CreateJob", ["Name"]),
    ("AWS::Glue::SecurityConfiguration", "Name"): ("glue", "CreateSecurityConfiguration", ["Name"]),
    ("AWS::CloudWatch::Alarm", "AlarmName"): ("cloudwatch", "PutMetricAlarm", ["AlarmName"]),
    ("AWS::KMS::Alias", "AliasName"): ("kms", "CreateAlias", ["AliasName"]),
    ("AWS::Logs::LogGroup", "LogGroupName"): ("logs", "CreateLogGroup", ["logGroupName"]),
    ("AWS::Serverless::Api", "Name"): ("apigateway", "CreateRestApi", ["name"]),
}


def _member(service: str, operation: str, path: list[str]):
    import botocore.session

    shape = botocore.session.get_session().get_service_model(service).operation_model(operation).input_shape
    for name in path:
        shape = shape.members[name]
    return shape


@pytest.mark.parametrize("kind, prop", sorted(NAME_MEMBERS))
def test_each_name_limit_is_the_one_botocores_model_states(kind, prop):
    import re

    limit = deploy.NAME_LIMITS[(kind, prop)]
    shape = _member(*NAME_MEMBERS[(kind, prop)])
    text = re.sub(r"<[^>]+>", "", shape.documentation)
    stated = re.search(r"limited to (\d+) characters|from one to (\d+) characters", text)
    # The documented length where the documentation is stricter than the model's maximum, else the maximum.
    expected = int(next(g for g in stated.groups() if g)) if stated else shape.metadata.get("max")
    assert limit == expected


def test_every_name_built_from_the_stack_name_has_a_known_limit(template):
    named = {(kind, path) for kind, path, _ in deploy.stack_named_properties(template)}
    assert named and named <= set(deploy.NAME_LIMITS), named - set(deploy.NAME_LIMITS)


def test_the_longest_allowed_stack_name_fits_every_name_and_one_more_character_is_refused(template, tmp_path, monkeypatch):
    limit, limiting = deploy.longest_stack_name(template)
    longest = "s" * limit
    for kind, path, text in deploy.stack_named_properties(template):
        name = text.replace(deploy.STACK_NAME_TOKEN, longest)
        assert deploy.NAME_LIMITS[(kind, path)] is None or len(name) <= deploy.NAME_LIMITS[(kind, path)], name
    assert limit == 64 - len("-create-endpoint-config") and "create-endpoint-config" in limiting
    # One character more: refused before sam builds or deploys anything, naming the limit and why.
    monkeypatch.setattr(deploy, "check_lambda_python", lambda which: None)
    monkeypatch.setattr(deploy, "samconfig", lambda path=None: {"default": {"deploy": {"parameters": {
        "stack_name": longest + "s", "region": "us-east-1"}}}})
    commands = []
    with pytest.raises(deploy.DeployError, match=rf"has {limit + 1} characters; this template allows at most {limit}"):
        deploy.deploy(run=commands.append)
    assert commands == []
    deploy.check_stack_name(longest, template)
