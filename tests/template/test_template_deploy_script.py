"""scripts/deploy.py: the one-command deploy and teardown, with AWS behind moto
and the external commands (mvn, sam) recorded instead of run."""
from __future__ import annotations

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
    }


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


def test_uploads_land_where_the_glue_job_reads_them(template, resolver, tmp_path):
    job_args = template["Resources"]["PreprocessJob"]["Properties"]["DefaultArguments"]
    assert job_args["--extra-jars"] == {"Fn::Sub": f"s3://${{ArtifactsBucket}}/{deploy.JAR_KEY}"}
    assert job_args["--spec"] == {"Fn::Sub": f"s3://${{ArtifactsBucket}}/{deploy.SPEC_KEY}"}
    jar = tmp_path / "mleap-glue-deps-1.0.0.jar"
    jar.write_bytes(b"PK\x03\x04 jar bytes")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="art-bucket")
        uploaded = deploy.upload_glue_dependencies(s3, outputs_for(), STACK, jar, deploy.SPEC)
        assert uploaded == [f"s3://art-bucket/{deploy.JAR_KEY}", f"s3://art-bucket/{deploy.SPEC_KEY}"]
        assert s3.get_object(Bucket="art-bucket", Key=deploy.JAR_KEY)["Body"].read() == jar.read_bytes()
        assert s3.get_object(Bucket="art-bucket", Key=deploy.SPEC_KEY)["Body"].read() == deploy.SPEC.read_bytes()


def test_a_stack_without_the_outputs_is_refused_by_name():
    with pytest.raises(deploy.DeployError, match="no output ArtifactsBucketName"):
        deploy.upload_glue_dependencies(None, {}, STACK, REPO_ROOT / "x.jar", deploy.SPEC)


def test_shaded_jar_is_chosen_over_the_original(tmp_path):
    (tmp_path / "original-mleap-glue-deps-1.0.0.jar").write_bytes(b"")
    (tmp_path / "mleap-glue-deps-1.0.0.jar").write_bytes(b"")
    assert deploy.shaded_jar(tmp_path).name == "mleap-glue-deps-1.0.0.jar"
    with pytest.raises(deploy.DeployError, match="expected one shaded"):
        deploy.shaded_jar(tmp_path / "missing")


def test_missing_python_313_stops_before_anything_runs(monkeypatch):
    commands = []
    with pytest.raises(deploy.DeployError, match="needs python3.13 on PATH"):
        deploy.deploy(run=commands.append, which=lambda name: None)
    assert commands == []


def test_deploy_builds_deploys_then_uploads(monkeypatch, tmp_path):
    commands = []
    monkeypatch.setattr(deploy, "check_lambda_python", lambda which: None)
    monkeypatch.setattr(deploy, "GLUE_TARGET", tmp_path)
    (tmp_path / "mleap-glue-deps-1.0.0.jar").write_bytes(b"jar")
    config = tmp_path / "samconfig.toml"
    config.write_text('version = 0.1\n[default.deploy.parameters]\nstack_name = "car-ml-pipeline"\nregion = "us-east-1"\n')
    monkeypatch.setattr(deploy, "SAMCONFIG", config)
    monkeypatch.setattr(deploy, "samconfig", lambda path=None: deploy.tomllib.loads(config.read_text()))
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="art-bucket")
        session = FakeSession(stubbed_cloudformation(outputs_for()))
        assert deploy.deploy(run=commands.append, session_factory=lambda settings: session) == 0
        keys = [o["Key"] for o in boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket="art-bucket")["Contents"]]
    assert [c[0] if c[0] == "mvn" else c[c.index("sam") + 1] for c in commands] == ["mvn", "build", "deploy"]
    assert "--guided" in commands[2], "no saved parameters: the first deploy must ask for them"
    assert sorted(keys) == sorted([deploy.JAR_KEY, deploy.SPEC_KEY])
    assert f"aws-sam-cli=={deploy.SAM_CLI_VERSION}" in commands[1]


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
        deleted = []
        monkeypatch.setattr(deploy, "delete_production_endpoint", lambda client, name: deleted.append(name) or True)
        session = FakeSession(stubbed_cloudformation(outputs_for()))
        assert deploy.teardown(run=commands.append, session_factory=lambda s: session,
                               confirm=lambda prompt: "car-ml-pipeline") == 0
        for bucket in ("art-bucket", "in-bucket", "log-bucket"):
            listing = s3.list_object_versions(Bucket=bucket)
            assert not listing.get("Versions") and not listing.get("DeleteMarkers"), bucket
    assert deleted == ["car-evaluation"]
    sam_args = commands[-1][commands[-1].index("sam") + 1:]
    assert sam_args[:3] == ["delete", "--stack-name", STACK]


def test_teardown_without_confirmation_deletes_nothing(monkeypatch, tmp_path):
    config = tmp_path / "samconfig.toml"
    config.write_text('version = 0.1\n[default.deploy.parameters]\nstack_name = "car-ml-pipeline"\n')
    monkeypatch.setattr(deploy, "samconfig", lambda path=None: deploy.tomllib.loads(config.read_text()))
    commands = []
    with mock_aws():
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
