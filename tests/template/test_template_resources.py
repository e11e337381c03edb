"""What the template deploys, checked against the code that runs there: the
functions' folders and environment, the Glue job's arguments, the approval
API's logging, the production guardrails, storage and encryption defaults."""
from __future__ import annotations

import ast
import json

import boto3
import pytest
from moto import mock_aws
from template_support import REPO_ROOT, env_vars_read, iam_allows, load_module, role_statements

# Names the Powertools library reads itself.
POWERTOOLS = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL"}


def function_env(template, logical_id) -> dict:
    merged = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    merged.update(template["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {}))
    return merged


def code_folder(resource) -> str:
    return resource["Properties"]["CodeUri"].rstrip("/")


def test_function_folders_hold_the_handler_the_template_names(template, functions):
    globals_ = template["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.13" and globals_["Tracing"] == "Active"
    assert globals_["Handler"] == "app.lambda_handler"
    for logical_id, resource in functions.items():
        folder = REPO_ROOT / code_folder(resource)
        app = folder / "app.py"
        assert app.is_file(), f"{logical_id}: {app} is missing"
        assert (folder / "requirements.txt").is_file(), f"{logical_id}: requirements.txt is missing"
        tree = ast.parse(app.read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == "lambda_handler" for n in tree.body), logical_id


@pytest.mark.parametrize("logical_id", [
    "StartRunFunction", "PrepareTrainingFunction", "CreateModelFunction", "CreateEndpointConfigFunction",
    "QATestFunction", "RequestApprovalFunction", "ApprovalApiFunction", "DeployProductionFunction", "CleanupFunction",
])
def test_function_environment_matches_what_its_code_reads(template, functions, logical_id):
    app = REPO_ROOT / code_folder(functions[logical_id]) / "app.py"
    assert app.is_file(), f"{app} is missing"
    read = env_vars_read(app.read_text())
    provided = set(function_env(template, logical_id))
    required = {name for name, needed in read.items() if needed}
    assert required - provided == set(), f"{logical_id} would fail: its code requires {sorted(required - provided)}"
    unused = provided - set(read) - POWERTOOLS
    assert unused == set(), f"{logical_id} sets variables its code never reads (a typo?): {sorted(unused)}"
    service = function_env(template, logical_id)["POWERTOOLS_SERVICE_NAME"]
    assert service == code_folder(functions[logical_id]).rsplit("/", 1)[-1]


def test_functions_share_the_common_layer(template):
    layer = template["Resources"]["PipelineCommonLayer"]
    assert layer["Properties"]["ContentUri"].rstrip("/") == "functions/common"
    assert layer["Metadata"]["BuildMethod"] == "python3.13"
    assert (REPO_ROOT / "functions" / "common" / "pipeline_common" / "__init__.py").is_file()
    assert template["Globals"]["Function"]["Layers"] == [{"Ref": "PipelineCommonLayer"}]


def test_images_the_functions_get_are_the_pinned_versions(template, resolver):
    env = resolver.resolve(function_env(template, "CreateModelFunction"))
    assert env["XGBOOST_IMAGE_URI"].endswith("/sagemaker-xgboost:1.7-1")
    assert env["SPARKML_IMAGE_URI"].endswith("/sagemaker-sparkml-serving:3.3")
    assert env["XGBOOST_IMAGE_URI"].startswith("683313688378.dkr.ecr.us-east-1.amazonaws.com/")


def test_prepare_training_builds_its_plan_from_the_template_environment(template, resolver, monkeypatch):
    prepare = load_module(REPO_ROOT / "functions" / "prepare_training" / "app.py", "template_env_prepare_training")
    for key, value in resolver.resolve(function_env(template, "PrepareTrainingFunction")).items():
        monkeypatch.setenv(key, str(value))
    settings = prepare.training_settings_from_env()
    assert settings["role_arn"] == resolver.get_att("SageMakerExecutionRole", "Arn")
    assert settings["instance_type"] == template["Parameters"]["TrainingInstanceType"]["Default"]
    assert settings["use_spot"] is False and settings["max_runtime"] == 3600
    monkeypatch.setenv("USE_SPOT_TRAINING", "true")
    assert prepare.training_settings_from_env()["max_wait"] >= 3600


# ------------------------------------------------------------------ Glue job

def test_glue_job_is_glue_5_1_running_only_the_packaged_script(template, resolver):
    job = resolver.resolve(template["Resources"]["PreprocessJob"]["Properties"])
    # Glue 5.1 = Spark 3.5.6, Python 3.11, Java 17: https://docs.aws.amazon.com/glue/latest/dg/release-notes.html
    assert job["GlueVersion"] == "5.1" and job["WorkerType"] == "G.1X" and int(job["NumberOfWorkers"]) == 2
    # The worker count is the GlueWorkerCount parameter, between Glue's minimum for a Spark job (2) and the
    # API's maximum for G.1X ("The maximum number of workers you can define are 299 for G.1X",
    # JobRun.NumberOfWorkers, https://docs.aws.amazon.com/glue/latest/dg/aws-glue-api-jobs-runs.html).
    assert template["Resources"]["PreprocessJob"]["Properties"]["NumberOfWorkers"] == {"Ref": "GlueWorkerCount"}
    count = template["Parameters"]["GlueWorkerCount"]
    assert (count["MinValue"], count["MaxValue"]) == (2, 299)
    assert job["Command"]["Name"] == "glueetl"
    assert (REPO_ROOT / job["Command"]["ScriptLocation"]).is_file(), "sam package uploads this path"
    artifacts = resolver.ref("ArtifactsBucket")
    assert job["DefaultArguments"]["--spec"] == f"s3://{artifacts}/deps/datasets/car.json"
    # sam package uploads Command.ScriptLocation and nothing else of a Glue job (aws-sam-cli
    # samcli/lib/package/packageable_resources.py): the job's own code has a deploy step of its own (make deploy
    # uploads its --extra-py-files zip: test_the_glue_jobs_zip_is_where_deploy_uploads_it), and nothing else is added.
    extras = {"--extra-jars", "--extra-py-files", "--additional-python-modules", "--extra-files", "--user-jars-first"}
    assert extras & set(job["DefaultArguments"]) == {"--extra-py-files"}
    # Continuous logging is a Glue 4.0-and-earlier switch; Glue 5.x logs in real time by itself:
    # https://docs.aws.amazon.com/glue/latest/dg/monitor-continuous-logging-enable.html
    assert not [k for k in job["DefaultArguments"] if k.startswith("--enable-continuous")]
    assert job["SecurityConfiguration"] == resolver.ref("GlueSecurityConfiguration")


def test_the_glue_jobs_zip_is_where_deploy_uploads_it(template, resolver):
    """--extra-py-files: "The Amazon S3 paths to additional Python modules that AWS Glue adds to the Python path
    before executing your script. Multiple values must be complete paths separated by a comma (,). Only
    individual files are supported, not a directory path."
    (https://docs.aws.amazon.com/glue/latest/dg/aws-glue-programming-etl-glue-arguments.html); a package goes in a
    .zip with the package directory at the root of the archive
    (https://docs.aws.amazon.com/glue/latest/dg/aws-glue-programming-python-libraries.html). sam package leaves the
    argument as it is (it packages Command.ScriptLocation only, as `aws cloudformation package` does: aws/aws-cli#7013,
    open), so it must name the object make deploy uploads, and the job's role must be able to read it."""
    import deploy

    defaults = template["Resources"]["PreprocessJob"]["Properties"]["DefaultArguments"]
    assert defaults["--extra-py-files"] == {"Fn::Sub": f"s3://${{ArtifactsBucket}}/{deploy.GLUE_PACKAGE_KEY}"}
    assert "," not in deploy.GLUE_PACKAGE_KEY and deploy.GLUE_PACKAGE_KEY.endswith(".zip")
    statements = role_statements(resolver, "GlueJobRole")
    artifacts = resolver.get_att("ArtifactsBucket", "Arn")
    assert iam_allows(statements, "s3:GetObject", f"{artifacts}/{deploy.GLUE_PACKAGE_KEY}")
    assert not iam_allows(statements, "s3:GetObject", f"{artifacts}/deps/glue/other.zip")
    assert not iam_allows(statements, "s3:PutObject", f"{artifacts}/{deploy.GLUE_PACKAGE_KEY}")
    # The bucket is encrypted with the pipeline's key: reading the zip needs kms:Decrypt on it.
    assert iam_allows(statements, "kms:Decrypt", resolver.get_att("PipelineKey", "Arn"))


def test_glue_script_accepts_the_arguments_the_pipeline_passes(template, resolver, definition, monkeypatch):
    """The job's default arguments plus the state machine's per-run arguments,
    parsed by the job's own argument parser (the spec fetched from S3 as on AWS)."""
    from preprocessing.options import parse_options
    defaults = resolver.resolve(template["Resources"]["PreprocessJob"]["Properties"]["DefaultArguments"])
    per_run = definition["States"]["PreprocessWithGlue"]["Parameters"]["Arguments"]
    artifacts = resolver.ref("ArtifactsBucket")
    # --spec per run: ResolveDataset's spec_uri for the dataset the upload names (here car).
    run_values = {"--input.$": "s3://input-bucket/input/car.csv", "--output.$": "s3://artifacts/runs/car-1/",
                  "--run_id.$": "car-1", "--spec.$": f"s3://{artifacts}/deps/datasets/car.json"}
    assert set(per_run) == set(run_values), "the definition passes arguments this test does not know"
    argv = []
    for name, value in defaults.items():
        argv += [name, value]
    for name, value in run_values.items():
        argv += [name[:-2], value]
    artifacts = resolver.ref("ArtifactsBucket")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=artifacts)
        s3.put_object(Bucket=artifacts, Key="deps/datasets/car.json", Body=(REPO_ROOT / "datasets" / "car.json").read_bytes())
        options = parse_options(argv)
    assert (options.input, options.output, options.run_id) == ("s3://input-bucket/input/car.csv", "s3://artifacts/runs/car-1/", "car-1")
    assert options.spec == json.loads((REPO_ROOT / "datasets" / "car.json").read_text())
    assert options.seed == int(defaults["--seed"])


# -------------------------------------------------------------- approval API

def test_api_access_log_never_records_the_reference(template):
    api = template["Resources"]["ApprovalApi"]["Properties"]
    log_format = api["AccessLogSetting"]["Format"]
    assert "$context.resourcePath" in log_format
    for leaky in ("$context.path", "$context.requestOverride", "querystring", "$context.authorizer", "$input"):
        assert leaky not in log_format, leaky
    assert json.loads(log_format.replace("$context.", "")), "the format is one JSON object per line"
    settings = api["MethodSettings"][0]
    assert settings["DataTraceEnabled"] is False and settings["LoggingLevel"] == "OFF"
    assert settings["ThrottlingRateLimit"] > 0 and settings["ThrottlingBurstLimit"] > 0
    assert api["TracingEnabled"] is False, "X-Ray traces record the URL with the reference"


def test_approval_routes_are_get_and_post_on_one_path(functions):
    events = functions["ApprovalApiFunction"]["Properties"]["Events"]
    routes = {(e["Properties"]["Path"], e["Properties"]["Method"].upper()) for e in events.values()}
    assert routes == {("/approvals/{ref}", "GET"), ("/approvals/{ref}", "POST")}


def test_approval_links_use_the_deployed_stage(template, resolver):
    env = resolver.resolve(function_env(template, "RequestApprovalFunction"))
    stage = template["Resources"]["ApprovalApi"]["Properties"]["StageName"]
    api_id = resolver.ref("ApprovalApi")
    assert env["API_BASE_URL"] == f"https://{api_id}.execute-api.us-east-1.amazonaws.com/{stage}"
    assert resolver.resolve(template["Outputs"]["ApprovalApiUrl"]["Value"]) == env["API_BASE_URL"]


def test_api_gateway_can_write_its_access_logs(template):
    assert template["Resources"]["ApprovalApi"]["DependsOn"] == "ApiGatewayAccount"
    account = template["Resources"]["ApiGatewayAccount"]
    assert account["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]}
    assert account["DeletionPolicy"] == "Retain", "the setting is account-wide: deleting the stack must not break other APIs"


# --------------------------------------------------------- production guardrails

def test_rollback_alarms_watch_the_production_variant(template, resolver):
    env = resolver.resolve(function_env(template, "DeployProductionFunction"))
    alarm_names = env["ROLLBACK_ALARM_NAMES"].split(",")
    alarms = {resolver.ref(k): v["Properties"] for k, v in template["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert sorted(alarm_names) == sorted(alarms)
    metrics = set()
    for name in alarm_names:
        props = resolver.resolve(alarms[name])
        assert props["Namespace"] == "AWS/SageMaker"
        assert {d["Name"]: d["Value"] for d in props["Dimensions"]} == {
            "EndpointName": resolver.ref("ProductionEndpointName"), "VariantName": "AllTraffic"}
        assert props["TreatMissingData"] == "notBreaching", "an idle endpoint must not roll back every update"
        metrics.add(props["MetricName"])
    assert metrics == {"Invocation5XXErrors", "ModelLatency"}
    assert 0 < int(env["BAKE_SECONDS"]) <= 3600


def test_deploy_production_and_sagemaker_may_read_the_alarms(resolver):
    from template_support import iam_allows, role_statements

    for role in ("DeployProductionRole", "SageMakerExecutionRole"):
        for alarm in ("ProductionErrorsAlarm", "ProductionLatencyAlarm"):
            assert iam_allows(role_statements(resolver, role), "cloudwatch:DescribeAlarms", resolver.get_att(alarm, "Arn")), role


# ------------------------------------------------------------ storage, events

@pytest.mark.parametrize("bucket", ["InputBucket", "ArtifactsBucket", "AccessLogsBucket"])
def test_buckets_are_private_encrypted_versioned_and_tls_only(template, bucket):
    props = template["Resources"][bucket]["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values()) and len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["OwnershipControls"]["Rules"][0]["ObjectOwnership"] == "BucketOwnerEnforced"
    policies = [r["Properties"] for r in template["Resources"].values()
                if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": bucket}]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": False}}
               for p in policies for s in p["PolicyDocument"]["Statement"]), f"{bucket} has no TLS-only policy"


def test_uploads_reach_start_run_through_eventbridge(template, resolver):
    assert template["Resources"]["InputBucket"]["Properties"]["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    rule = resolver.resolve(template["Resources"]["UploadRule"]["Properties"])
    assert rule["EventPattern"] == {
        "source": ["aws.s3"], "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [resolver.ref("InputBucket")]}, "object": {"key": [{"prefix": resolver.ref("InputPrefix")}]}},
    }
    target = rule["Targets"][0]
    assert target["Arn"] == resolver.get_att("StartRunFunction", "Arn")
    assert target["DeadLetterConfig"]["Arn"] == resolver.get_att("StartRunDeadLetterQueue", "Arn")
    env = resolver.resolve(function_env(template, "StartRunFunction"))
    assert env["INPUT_PREFIX"] == resolver.ref("InputPrefix")


def test_state_table_matches_what_the_functions_store(template):
    props = template["Resources"]["StateTable"]["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    writer = (REPO_ROOT / "functions" / "request_approval" / "app.py").read_text()
    assert '"ttl": {"N"' in writer, "request_approval no longer writes the table's TTL attribute"


def test_notifications_are_encrypted_and_go_to_the_email_parameter(template):
    assert template["Resources"]["NotificationTopic"]["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": ["PipelineKey", "Arn"]}
    subscription = template["Resources"]["NotificationSubscription"]["Properties"]
    assert subscription["Protocol"] == "email" and subscription["Endpoint"] == {"Ref": "NotificationEmail"}
    assert template["Resources"]["PipelineKey"]["Properties"]["EnableKeyRotation"] is True


def test_every_log_group_has_retention_and_the_stack_key(template):
    groups = {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == "AWS::Logs::LogGroup"}
    assert len(groups) == 19  # 16 functions, 2 state machines, the API access log
    for name, props in groups.items():
        assert props["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
        assert props["KmsKeyId"] == {"Fn::GetAtt": ["PipelineKey", "Arn"]}, name


def test_parameters_the_brief_promises_exist_with_their_defaults(template):
    params = template["Parameters"]
    assert params["AccuracyThreshold"]["Default"] == 0.95
    assert params["ApprovalWindowSeconds"]["Default"] == 86400
    for name in ("NotificationEmail", "TrainingInstanceType", "EndpointInstanceType", "UseSpotTraining",
                 "ProductionEndpointName", "InputPrefix", "PollSeconds", "EndpointWaitSeconds"):
        assert name in params, name
    # Issue 11: scale and datasets.
    assert params["TrainingInstanceCount"]["Default"] == 1 and params["TrainingInstanceCount"]["MinValue"] == 1
    assert params["GlueWorkerCount"]["Default"] == 2
    assert params["R2Threshold"]["Default"] == 0.5 and params["R2Threshold"]["MaxValue"] == 1
    assert params["DefaultDataset"]["Default"] == "car"
    assert params["ProductionEndpointName"]["Default"] == "car-evaluation"  # existing deployments keep their endpoint
    assert params["ProductionEndpointSuffix"]["Default"] == "-prod"


def test_the_parameters_reach_the_functions_that_use_them(template, resolver):
    env = {k: resolver.resolve(v["Properties"].get("Environment", {}).get("Variables", {}))
           for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    params = template["Parameters"]
    assert env["PrepareTrainingFunction"]["TRAINING_INSTANCE_COUNT"] == str(params["TrainingInstanceCount"]["Default"])
    assert env["QATestFunction"]["R2_THRESHOLD"] == str(params["R2Threshold"]["Default"])
    for function in ("StartRunFunction", "ResolveDatasetFunction"):
        assert env[function]["DEFAULT_DATASET"] == "car", function
    assert env["ResolveDatasetFunction"]["PRODUCTION_ENDPOINT_SUFFIX"] == "-prod"
    assert env["ResolveDatasetFunction"]["INPUT_PREFIX"] == env["StartRunFunction"]["INPUT_PREFIX"]
    assert env["DeployProductionFunction"]["PRODUCTION_ENDPOINT_NAME"] == "car-evaluation"
    # The run-time alarms are named where the execution role and the function may read them.
    assert env["DeployProductionFunction"]["ALARM_NAME_PREFIX"].endswith("-production-")


@pytest.mark.parametrize("suffix, valid", [("-prod", True), ("-live-2", True), ("prod", False), ("-qa", False),
                                           ("-x-qa", False), ("-Prod", False), ("-" + "a" * 24, False)])
def test_the_endpoint_suffix_can_never_make_a_qa_like_name(template, suffix, valid):
    """Cleanup may delete, and qa_test invoke, endpoints named *-qa: no production endpoint may be."""
    import re

    pattern = template["Parameters"]["ProductionEndpointSuffix"]["AllowedPattern"]
    assert bool(re.match(pattern, suffix)) is valid
