"""The state machines as deployed: their substitutions, the API requests
their service tasks make (checked against botocore's input shapes), the roles
that let them make them and nothing else, and the EventBridge rule that
starts the cleanup state machine when a pipeline execution ends badly."""
from __future__ import annotations

import json
import re

import botocore.session
import pytest
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters
from template_support import ACCOUNT, REGION, REPO_ROOT, iam_allows, load_module, role_statements

SUBSTITUTION = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
INTEGRATION = re.compile(r"^arn:aws:states:::(?:(aws-sdk):)?([a-z0-9-]+):([A-Za-z]+)(?:\.(sync|waitForTaskToken))?$")
# Step Functions service name -> botocore service name
BOTOCORE_SERVICE = {"glue": "glue", "sagemaker": "sagemaker", "sns": "sns", "lambda": "lambda"}
LOG_DELIVERY = {"logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
                "logs:DescribeLogGroups"}
TRACING = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"}


@pytest.fixture(scope="module")
def state_machine(template):
    return template["Resources"]["PipelineStateMachine"]["Properties"]


@pytest.fixture(scope="module")
def substitutions(state_machine, resolver):
    return {name: resolver.resolve(value) for name, value in state_machine["DefinitionSubstitutions"].items()}


@pytest.fixture(scope="module")
def deployed_definition(definition_text, substitutions) -> dict:
    """The definition as Step Functions receives it, substitutions filled."""
    return json.loads(SUBSTITUTION.sub(lambda m: substitutions[m.group(1)], definition_text))


def service_tasks(definition: dict):
    for name, state in definition["States"].items():
        if state["Type"] == "Task" and state["Resource"].startswith("arn:aws:states:::"):
            yield name, state


def test_every_placeholder_has_a_substitution_and_every_substitution_is_used(definition_text, state_machine):
    used = set(SUBSTITUTION.findall(definition_text))
    provided = set(state_machine["DefinitionSubstitutions"])
    assert used - provided == set(), f"placeholders the template does not fill: {sorted(used - provided)}"
    assert provided - used == set(), f"substitutions the definition never uses: {sorted(provided - used)}"


def test_substitutions_point_at_the_resources_they_name(substitutions, resolver):
    functions = {k: v for k, v in resolver.resources.items() if v["Type"] == "AWS::Serverless::Function"}
    for name, value in substitutions.items():
        if name.endswith("FunctionArn"):
            assert value.startswith(f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"), (name, value)
    expected_functions = {
        "ResolveDatasetFunctionArn": "resolve_dataset", "PrepareTrainingFunctionArn": "prepare_training", "CreateModelFunctionArn": "create_model",
        "CreateEndpointConfigFunctionArn": "create_endpoint_config", "QATestFunctionArn": "qa_test",
        "RequestApprovalFunctionArn": "request_approval", "DeployProductionFunctionArn": "deploy_production",
        "CleanupFunctionArn": "cleanup",
    }
    for substitution, folder in expected_functions.items():
        logical = resolver.template["Resources"]["PipelineStateMachine"]["Properties"]["DefinitionSubstitutions"][substitution]["Fn::GetAtt"][0]
        assert functions[logical]["Properties"]["CodeUri"].rstrip("/") == f"functions/{folder}", substitution
    assert substitutions["GlueJobName"] == resolver.ref("PreprocessJob")
    assert substitutions["ArtifactsBucketName"] == resolver.ref("ArtifactsBucket")


# ------------------------------------------------------------ a representative run

@pytest.fixture(scope="module")
def run_state(template, resolver, substitutions, monkeypatch_module):
    """The accumulated execution state as it would be at the end of a run,
    with the fields every state's paths read. `plan` comes from the real
    prepare_training code, configured by the template's own environment."""
    run_id = "car-8f14e45fceea"
    artifacts = substitutions["ArtifactsBucketName"]
    run_prefix = f"s3://{artifacts}/runs/{run_id}/"
    prepare = load_module(REPO_ROOT / "functions" / "prepare_training" / "app.py", "template_test_prepare_training")
    env = resolver.resolve(template["Resources"]["PrepareTrainingFunction"]["Properties"]["Environment"]["Variables"])
    for key, value in env.items():
        monkeypatch_module.setenv(key, str(value))
    manifest = {
        "num_class": 4,
        "uris": {
            "train": f"{run_prefix}data/train/", "validation": f"{run_prefix}data/validation/",
            "test": f"{run_prefix}data/test/", "training_output": f"{run_prefix}training/",
        },
    }
    # ResolveDataset's answer for car under the template's own parameters.
    resolve_env = resolver.resolve(template["Resources"]["ResolveDatasetFunction"]["Properties"]["Environment"]["Variables"])
    dataset = {"name": resolve_env["DEFAULT_DATASET"],
               "spec_uri": f"s3://{artifacts}/deps/datasets/{resolve_env['DEFAULT_DATASET']}.json",
               "production_endpoint": resolve_env["PRODUCTION_ENDPOINT_NAME"]}
    names = prepare.resource_names(run_id, dataset["production_endpoint"])
    training = prepare.training_request(names["training_job"], manifest, prepare.training_settings_from_env())
    return {
        "input_uri": f"s3://input-bucket/input/car.csv",
        "run": {"run_id": run_id, "execution_arn": f"arn:aws:states:{REGION}:{ACCOUNT}:execution:sm:{run_id}",
                "started_at": "2025-01-01T00:00:00.000Z", "input_uri": "s3://input-bucket/input/car.csv",
                "run_prefix": run_prefix},
        "dataset": dataset,
        "glue": {"job_run_id": "jr_0123456789abcdef", "state": "SUCCEEDED"},
        "plan": {"names": names, "training": training, "manifest_uri": f"{run_prefix}manifest.json",
                 "poll_seconds": int(env["POLL_SECONDS"]), "approval_timeout_seconds": int(env["APPROVAL_TIMEOUT_SECONDS"]),
                 # a rollback run's plan (PrepareRollback) has these too
                 "summary": {"kind": "rollback"}, "registry": {"model_package_arn": "arn:...:model-package/x/1"}},
        "rollback": {"model_package_version": 1},
        "registry": {"model_package_arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{names['production_endpoint']}/1",
                     "model_package_group": names["production_endpoint"], "version": 1, "status": "Approved",
                     "kind": "registered"},
        "training": {"training_job_name": names["training_job"], "wait_until": "2025-01-01T02:00:00Z",
                     "status": "Completed", "ready": True,
                     "model_artifacts": f"{run_prefix}training/{names['training_job']}/output/model.tar.gz"},
        "model": {"model_name": names["model"]},
        "endpoint_config": {"endpoint_config_name": names["endpoint_config"]},
        "qa_endpoint": {"endpoint_name": names["qa_endpoint"], "wait_until": "2025-01-01T03:00:00Z",
                        "status": "InService", "ready": True},
        "qa": {"problem_type": "multiclass", "metric": "accuracy", "value": 0.97, "accuracy": 0.97, "threshold": 0.95,
               "rows": 260, "report_uri": f"{run_prefix}qa/report.json"},
        "qa_cleanup": {"qa_endpoint": names["qa_endpoint"], "action": "deleted", "pending": False},
        "approval": {"decision": "approve", "reason": "looks good", "decided_at": "2025-01-01T01:00:00Z"},
        "production": {"endpoint_name": names["production_endpoint"], "action": "updated",
                       "wait_until": "2025-01-01T04:00:00Z", "status": "InService", "ready": True,
                       "endpoint_config_name": f"{names['production_endpoint']}-v1-0123456789ab-config",
                       "model_package_version": 1, "data_capture": "on: requests and responses are captured"},
        "error": {"Error": "States.TaskFailed", "Cause": "something broke"},
        "failure": {"state": "TrainXGBoost", "error": "States.TaskFailed", "cause": "something broke"},
        "cleanup": {"qa_endpoint": names["qa_endpoint"], "action": "deleted", "pending": False,
                    "notice": {"subject": f"Pipeline run {run_id} failed in TrainXGBoost", "message": "..."}},
        "cleanup_error": {"Error": "Lambda.Unknown", "Cause": ""},
        "outcome": {"error": "Pipeline.States.TaskFailed", "cause": "something broke"},
    }


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


CONTEXT = {
    "Execution": {"Id": f"arn:aws:states:{REGION}:{ACCOUNT}:execution:sm:car-8f14e45fceea", "Name": "car-8f14e45fceea",
                  "StartTime": "2025-01-01T00:00:00.000Z",
                  "Input": {"input_uri": "s3://input-bucket/input/car.csv", "dataset": "car"}},
    "Task": {"Token": "AQCEAAAAKgAAAA" + "x" * 600},
}


def read_path(path: str, state: dict):
    if path == "$":
        return state
    root, rest = (CONTEXT, path[3:]) if path.startswith("$$.") else (state, path[2:])
    value = root
    for part in rest.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"{path}: the state has no {part!r} here (the definition and the state's contract disagree)")
        value = value[part]
    return value


def split_arguments(text: str) -> list[str]:
    parts, current, quoted = [], "", False
    for char in text:
        if char == "'" and not current.endswith("\\"):
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts


def evaluate(expression: str, state: dict):
    match = re.fullmatch(r"States\.Format\((.*)\)", expression, re.S)
    if match:
        template_text, *args = split_arguments(match.group(1))
        values = [str(evaluate(arg, state)) for arg in args]
        pieces = template_text.strip("'").split("{}")
        assert len(pieces) == len(values) + 1, f"{expression}: placeholders and arguments differ in number"
        return "".join(p + v for p, v in zip(pieces, values + [""]))
    if expression.startswith("$"):
        return read_path(expression, state)
    if expression.startswith("States."):
        raise AssertionError(f"no evaluator for intrinsic {expression}; extend this test")
    return expression.strip("'")


def fill(parameters, state: dict):
    if isinstance(parameters, dict):
        filled = {}
        for key, value in parameters.items():
            if key.endswith(".$"):
                filled[key[:-2]] = evaluate(value, state)
            else:
                filled[key] = fill(value, state)
        return filled
    if isinstance(parameters, list):
        return [fill(item, state) for item in parameters]
    return parameters


def operation_for(resource: str):
    match = INTEGRATION.match(resource)
    assert match, f"unrecognised integration {resource}"
    _, service, action, _ = match.groups()
    model = botocore.session.get_session().get_service_model(BOTOCORE_SERVICE[service])
    operation = action[0].upper() + action[1:]
    if service == "lambda" and operation == "Invoke":
        return model.operation_model("Invoke")
    return model.operation_model(operation)


def test_every_service_task_sends_a_request_its_api_accepts(deployed_definition, run_state):
    checked = []
    for name, state in service_tasks(deployed_definition):
        operation = operation_for(state["Resource"])
        request = fill(state["Parameters"], run_state)
        if operation.name == "Invoke":
            request["Payload"] = json.dumps(request["Payload"]).encode()
        try:
            validate_parameters(request, operation.input_shape)
        except ParamValidationError as error:
            pytest.fail(f"{name}: {operation.service_model.service_name}.{operation.name} would refuse the request: {error}")
        checked.append(operation.name)
    assert {"StartJobRun", "CreateTrainingJob", "Publish", "Invoke"} <= set(checked)


def create_training_job_shape():
    return botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateTrainingJob").input_shape


def test_train_xgboost_sends_every_field_of_the_planned_request(deployed_definition, run_state):
    """recover_training compares the job it finds with plan.training: TrainXGBoost must send that request whole."""
    train = deployed_definition["States"]["TrainXGBoost"]
    assert fill(train["Parameters"], run_state) == run_state["plan"]["training"]


def test_a_missing_training_field_would_be_caught(deployed_definition, run_state):
    """The shape check is not vacuous: drop a required CreateTrainingJob field and it fails."""
    state = json.loads(json.dumps(run_state))
    del state["plan"]["training"]["AlgorithmSpecification"]["TrainingInputMode"]
    train = deployed_definition["States"]["TrainXGBoost"]
    with pytest.raises(ParamValidationError):
        validate_parameters(fill(train["Parameters"], state), create_training_job_shape())


def test_lambda_tasks_invoke_functions_of_this_stack(deployed_definition, resolver):
    arns = {resolver.get_att(k, "Arn") for k, v in resolver.resources.items() if v["Type"] == "AWS::Serverless::Function"}
    for name, state in service_tasks(deployed_definition):
        if ":lambda:invoke" in state["Resource"]:
            assert state["Parameters"]["FunctionName"] in arns, name


# ------------------------------------------------------------------ the role
# What each integration needs, from AWS's documentation: test_template_sfn_role.py.

def test_state_machine_role_reaches_each_resource_the_run_touches(deployed_definition, resolver, run_state):
    statements = role_statements(resolver, "StateMachineRole")
    names = run_state["plan"]["names"]
    sagemaker = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
    expectations = [
        ("glue:StartJobRun", f"arn:aws:glue:{REGION}:{ACCOUNT}:job/{deployed_definition['States']['PreprocessWithGlue']['Parameters']['JobName']}"),
        ("sagemaker:CreateTrainingJob", f"{sagemaker}:training-job/{names['training_job']}"),
        ("iam:PassRole", run_state["plan"]["training"]["RoleArn"]),
        ("sns:Publish", resolver.ref("NotificationTopic")),
    ]
    for _, state in service_tasks(deployed_definition):
        if ":lambda:invoke" in state["Resource"]:
            expectations.append(("lambda:InvokeFunction", state["Parameters"]["FunctionName"]))
    missing = [(a, r) for a, r in expectations if not iam_allows(statements, a, r)]
    assert not missing, f"the state machine could not: {missing}"
    # ...and it touches endpoints only through the Lambdas (whose errors name throttling apart from refusals).
    for action in ("sagemaker:CreateEndpoint", "sagemaker:DescribeEndpoint", "sagemaker:DeleteEndpoint"):
        for endpoint in (names["production_endpoint"], names["qa_endpoint"]):
            assert not iam_allows(statements, action, f"{sagemaker}:endpoint/{endpoint}"), (action, endpoint)


def test_pass_role_is_limited_to_sagemaker(resolver):
    for role in ("StateMachineRole", "CreateModelRole"):
        passing = [s for s in role_statements(resolver, role) if "iam:PassRole" in s["Action"]]
        assert passing, role
        for statement in passing:
            assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
            assert statement["Resource"] == resolver.get_att("SageMakerExecutionRole", "Arn")


def test_execution_logging_keeps_the_task_token_out_and_tracing_on(state_machine):
    logging = state_machine["Logging"]
    assert logging["Level"] == "ALL"
    assert logging["IncludeExecutionData"] is False, "the approval task's input carries the task token"
    assert state_machine["Tracing"] == {"Enabled": True}
    assert logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"] == {"Fn::GetAtt": ["StateMachineLogGroup", "Arn"]}


def test_start_run_targets_the_state_machine_by_its_fixed_name(template, resolver):
    env = resolver.resolve(template["Resources"]["StartRunFunction"]["Properties"]["Environment"]["Variables"])
    assert env["STATE_MACHINE_ARN"] == resolver.ref("PipelineStateMachine")
    assert iam_allows(role_statements(resolver, "StartRunRole"), "states:StartExecution", resolver.ref("PipelineStateMachine"))


# ------------------------------------------------------------- the cleanup state machine

@pytest.fixture(scope="module")
def cleanup_machine(template):
    return template["Resources"]["CleanupStateMachine"]["Properties"]


def test_the_cleanup_definition_gets_every_substitution_it_uses(cleanup_machine, resolver):
    text = (REPO_ROOT / "statemachine" / "cleanup.asl.json").read_text()
    assert set(SUBSTITUTION.findall(text)) == set(cleanup_machine["DefinitionSubstitutions"])
    assert resolver.resolve(cleanup_machine["DefinitionSubstitutions"]["CleanupFunctionArn"]) == resolver.get_att(
        "CleanupFunction", "Arn")


def test_the_cleanup_function_names_the_cleanup_state_machine(template, resolver):
    env = resolver.resolve(template["Resources"]["CleanupFunction"]["Properties"]["Environment"]["Variables"])
    machine = resolver.ref("CleanupStateMachine")
    assert env["CLEANUP_STATE_MACHINE_ARN"] == machine
    assert iam_allows(role_statements(resolver, "CleanupRole"), "states:StartExecution", machine)
    assert iam_allows(role_statements(resolver, "RunEndedRuleRole"), "states:StartExecution", machine)
    assert not iam_allows(role_statements(resolver, "RunEndedRuleRole"), "states:StartExecution",
                          resolver.ref("PipelineStateMachine"))


def granted_actions(statements) -> set[str]:
    actions = set()
    for statement in statements:
        if statement["Effect"] == "Allow":
            listed = statement["Action"]
            actions |= {listed} if isinstance(listed, str) else set(listed)
    return actions


def test_the_cleanup_state_machine_may_only_call_the_cleanup_function(resolver):
    needed = {"lambda:InvokeFunction"} | LOG_DELIVERY | TRACING
    assert granted_actions(role_statements(resolver, "CleanupStateMachineRole")) == needed
    assert iam_allows(role_statements(resolver, "CleanupStateMachineRole"), "lambda:InvokeFunction",
                      resolver.get_att("CleanupFunction", "Arn"))
    assert not iam_allows(role_statements(resolver, "CleanupStateMachineRole"), "lambda:InvokeFunction",
                          resolver.get_att("DeployProductionFunction", "Arn"))


# The events Step Functions sends when a standard workflow's execution changes status, as the developer
# guide shows them (https://docs.aws.amazon.com/step-functions/latest/dg/eventbridge-integration.html;
# formerly cw-events.html, "Step Functions event examples"), for this stack's pipeline.
def documented_event(status: str, state_machine_arn: str) -> dict:
    execution = state_machine_arn.replace(":stateMachine:", ":execution:") + ":car-0123456789ab"
    return {
        "version": "0", "id": "315c1398-40ff-a850-213b-158f73e60175",
        "detail-type": "Step Functions Execution Status Change", "source": "aws.states",
        "account": ACCOUNT, "time": "2019-02-26T19:42:21Z", "region": REGION, "resources": [execution],
        "detail": {"executionArn": execution, "stateMachineArn": state_machine_arn, "name": "car-0123456789ab",
                   "status": status, "startDate": 1551225014968, "stopDate": 1551225017576 if status != "RUNNING" else None,
                   "input": "{}", "inputDetails": {"included": True}, "output": None, "outputDetails": None},
    }


@pytest.mark.parametrize("status, matches", [("FAILED", True), ("TIMED_OUT", True), ("ABORTED", True),
                                             ("SUCCEEDED", False), ("RUNNING", False)])
def test_run_ended_rule_matches_executions_that_ended_badly(template, resolver, status, matches):
    """The template's pattern against the documented events, matched as EventBridge does (moto's rules)."""
    from moto import mock_aws

    from localmode.aws import eventbridge_delivers

    rule = template["Resources"]["RunEndedRule"]["Properties"]
    pattern = resolver.resolve(rule["EventPattern"])
    ours = documented_event(status, resolver.ref("PipelineStateMachine"))
    other = documented_event(status, f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:someone-elses")
    with mock_aws(), pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", REGION)
        assert eventbridge_delivers(pattern, ours) is matches
        assert eventbridge_delivers(pattern, other) is False
    [target] = rule["Targets"]
    assert resolver.resolve(target["Arn"]) == resolver.ref("CleanupStateMachine")
    assert resolver.resolve(target["DeadLetterConfig"]["Arn"]) == resolver.get_att("RunEndedDeadLetterQueue", "Arn")


def _longest(definition: dict) -> dict[str, int]:
    """The longest value each path an email subject formats can hold, each from its own source."""
    models = botocore.session.get_session()
    sagemaker = models.get_service_model("sagemaker")
    from dataset_spec import DATASET_NAME_PATTERN

    return {
        # A console execution may be named with up to 80 characters (StartExecution's name).
        "$.run.run_id": models.get_service_model("stepfunctions").operation_model("StartExecution")
        .input_shape.members["name"].metadata["max"],
        "$.dataset.name": int(re.search(r"\{0,(\d+)\}", DATASET_NAME_PATTERN).group(1)) + 2,
        "$.production.endpoint_name": sagemaker.operation_model("CreateEndpoint").input_shape.members["EndpointName"]
        .metadata["max"],
        # A model package version is an Integer in SageMaker's model (no max): at most 10 digits.
        "$.registry.version": 10,
        "$.failure.state": max(len(name) for name in definition["States"]),
    }


def _subject_limit() -> int:
    """SNS's Subject rule, read from botocore's sns:Publish documentation ("less than 100 characters long")."""
    doc = (botocore.session.get_session().get_service_model("sns").operation_model("Publish")
           .input_shape.members["Subject"].documentation)
    return int(re.search(r"less than (\d+) characters", doc).group(1)) - 1


def test_every_email_subject_fits_snss_limit_at_its_longest(definition):
    """Issue 20: NotifySuccess, NotifyRolledBack and NotifyFailureWithoutCleanup formatted the run id (up to 80
    characters) into the subject, so a long console execution name made sns:Publish refuse the email."""
    longest, limit = _longest(definition), _subject_limit()
    subjects = {name: state["Parameters"]["Subject.$"] for name, state in definition["States"].items()
                if state.get("Resource") == "arn:aws:states:::sns:publish"}
    assert len(subjects) >= 4
    too_long = {}
    for name, subject in subjects.items():
        if subject.startswith("$."):
            continue  # written by a Lambda (pipeline_common.failures caps it): checked below
        template, *paths = split_arguments(re.fullmatch(r"States\.Format\((.*)\)", subject).group(1))
        length = len(template.strip("'").replace("{}", "")) + sum(longest[path] for path in paths)
        if length > limit:
            too_long[name] = length
    assert too_long == {}
    from pipeline_common.failures import failure_notice

    notice = failure_notice("r" * longest["$.run.run_id"], {"state": "x" * longest["$.failure.state"], "error": "E",
                                                            "cause": "c"})
    assert 0 < len(notice["subject"]) <= limit
