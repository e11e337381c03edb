"""Each state machine's role grants what AWS documents for every integration
its Task states use (tests/template/sfn_integration_policies.py, written
from the Step Functions developer guide and AWS CDK, not from the template),
on the resources the states touch, and nothing else."""
from __future__ import annotations

import copy
import fnmatch
import json
import re

import pytest
from sfn_integration_policies import ANY, AWS_SDK_SERVICES, UNKNOWN, Account, UnknownIntegration, needed
from template_support import ACCOUNT, PSEUDO, REGION, REPO_ROOT, iam_allows, role_statements
# The sample execution state (the real prepare_training's plan) and the path evaluator the
# request-shape tests use: the same values the deployed states would send.
from test_template_state_machine import evaluate, monkeypatch_module, run_state, state_machine, substitutions  # noqa: F401

SUBSTITUTION = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
ACCOUNT_UNDER_TEST = Account(PSEUDO["AWS::Partition"], REGION, ACCOUNT)
# Besides the integrations: execution logging and X-Ray (no resource-level permissions,
# https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html, .../concepts-xray-tracing.html)
# and the stack key behind the encrypted SNS topic.
PLUMBING = {
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
    "kms:Decrypt", "kms:GenerateDataKey",
}


def state_machines(template) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items()
            if v["Type"] in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine")}


def deployed_definition(resolver, machine: dict) -> dict:
    props = machine["Properties"]
    text = (REPO_ROOT / props["DefinitionUri"]).read_text()
    values = {name: resolver.resolve(value) for name, value in props.get("DefinitionSubstitutions", {}).items()}
    return json.loads(SUBSTITUTION.sub(lambda m: values[m.group(1)], text))


def role_of(machine: dict) -> str:
    role = machine["Properties"]["Role"]
    assert isinstance(role, dict) and "Fn::GetAtt" in role, "the state machine's role must be a role of this stack"
    return role["Fn::GetAtt"][0] if isinstance(role["Fn::GetAtt"], list) else role["Fn::GetAtt"].split(".")[0]


def task_states(states: dict):
    """Every Task, also inside Parallel branches and Map iterators."""
    for name, state in states.items():
        if state["Type"] == "Task":
            yield name, state
        for branch in state.get("Branches", []):
            yield from task_states(branch["States"])
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from task_states(state[key]["States"])


def sent_parameters(parameters, state: dict):
    """The Parameters as sent, a path the sample state lacks becoming UNKNOWN."""
    if isinstance(parameters, dict):
        sent = {}
        for key, value in parameters.items():
            if key.endswith(".$"):
                try:
                    sent[key[:-2]] = evaluate(value, state)
                except KeyError:
                    sent[key[:-2]] = UNKNOWN
            else:
                sent[key] = sent_parameters(value, state)
        return sent
    if isinstance(parameters, list):
        return [sent_parameters(item, state) for item in parameters]
    return parameters


def grants_on_star(statements, action: str) -> bool:
    return any(
        statement["Effect"] == "Allow"
        and any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _list(statement["Action"]))
        and "*" in _list(statement.get("Resource", []))
        for statement in statements
    )


def grants_some(statements, action: str, arn_prefix: str) -> bool:
    """Whether the action is granted on some resource of the type `arn_prefix` starts."""
    for statement in statements:
        if statement["Effect"] != "Allow":
            continue
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _list(statement["Action"])):
            continue
        for pattern in _list(statement.get("Resource", [])):
            if pattern == "*" or pattern.startswith(arn_prefix) or fnmatch.fnmatchcase(arn_prefix + "x", pattern):
                return True
    return False


def _list(value):
    return [value] if isinstance(value, str) else list(value)


def missing_grants(definition: dict, statements: list[dict], state: dict) -> list[str]:
    missing = []
    for name, task in task_states(definition["States"]):
        params = sent_parameters(task.get("Parameters", {}), state)
        for action, arn, source in needed(task["Resource"], params, ACCOUNT_UNDER_TEST):
            if arn == ANY:
                ok, on = grants_on_star(statements, action), '"*"'
            elif isinstance(arn, tuple):
                ok, on = grants_some(statements, action, arn[1]), f"some {arn[1]}..."
            else:
                ok, on = iam_allows(statements, action, arn), arn
            if not ok:
                missing.append(f"{name}: {action} on {on} ({source})")
    return missing


def needed_actions(definition: dict, state: dict) -> set[str]:
    actions = set()
    for _, task in task_states(definition["States"]):
        params = sent_parameters(task.get("Parameters", {}), state)
        actions |= {action for action, _, _ in needed(task["Resource"], params, ACCOUNT_UNDER_TEST)}
    return actions


@pytest.fixture(scope="module")
def machines(template, resolver):
    found = state_machines(template)
    assert found, "template.yaml declares no state machine"
    return {logical: (deployed_definition(resolver, machine), role_of(machine)) for logical, machine in found.items()}


def test_each_state_machine_role_grants_what_its_integrations_need(machines, resolver, run_state):
    for logical, (definition, role) in machines.items():
        missing = missing_grants(definition, role_statements(resolver, role), run_state)
        assert not missing, f"{logical} ({role}) would be denied:\n  " + "\n  ".join(missing)


def test_each_state_machine_role_grants_nothing_its_integrations_do_not_need(machines, resolver, run_state):
    for logical, (definition, role) in machines.items():
        granted = {action for statement in role_statements(resolver, role) if statement["Effect"] == "Allow"
                   for action in _list(statement["Action"])}
        extra = granted - needed_actions(definition, run_state) - PLUMBING
        assert not extra, f"{role} grants what {logical}'s integrations do not need: {sorted(extra)}"


def test_training_is_allowed_to_tag_the_job_step_functions_creates(machines, resolver, run_state):
    """The audit's finding, named: without AddTags every TrainXGBoost is denied; ListTags is documented on "*"."""
    definition, role = machines["PipelineStateMachine"]
    statements = role_statements(resolver, role)
    job = run_state["plan"]["names"]["training_job"]
    assert iam_allows(statements, "sagemaker:AddTags", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{job}")
    assert grants_on_star(statements, "sagemaker:ListTags")


def test_the_check_fails_on_the_role_the_audit_found(machines, resolver, run_state):
    """The role before the fix (no AddTags, ListTags only on the training jobs) is reported."""
    definition, role = machines["PipelineStateMachine"]
    statements = copy.deepcopy(role_statements(resolver, role))
    for statement in statements:
        actions = [a for a in _list(statement["Action"]) if a != "sagemaker:AddTags"]
        if "sagemaker:ListTags" in actions:
            statement["Resource"] = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/*-train"
        statement["Action"] = actions
    missing = "\n".join(missing_grants(definition, statements, run_state))
    assert "TrainXGBoost: sagemaker:AddTags" in missing
    assert 'TrainXGBoost: sagemaker:ListTags on "*"' in missing


def test_an_integration_without_an_entry_fails_the_check(machines, resolver, run_state):
    definition, role = machines["PipelineStateMachine"]
    changed = copy.deepcopy(definition)
    changed["States"]["NewTask"] = {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem",
                                    "Parameters": {"TableName": "t", "Item": {}}, "End": True}
    with pytest.raises(UnknownIntegration, match="dynamodb:putItem"):
        missing_grants(changed, role_statements(resolver, role), run_state)
    changed["States"]["NewTask"]["Resource"] = "arn:aws:states:::aws-sdk:s3:deleteObject"
    with pytest.raises(UnknownIntegration, match="aws-sdk:s3:deleteObject"):
        missing_grants(changed, role_statements(resolver, role), run_state)


def test_aws_sdk_calls_need_the_services_own_action_on_the_named_resource():
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/car-1-qa"
    assert needed("arn:aws:states:::aws-sdk:sagemaker:deleteEndpoint", {"EndpointName": "car-1-qa"},
                  ACCOUNT_UNDER_TEST) == [("sagemaker:DeleteEndpoint", arn, AWS_SDK_SERVICES["sagemaker"][0])]
