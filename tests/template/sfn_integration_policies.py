"""What a Step Functions role needs for each service integration a Task
state may use, encoded from AWS's documentation and not from template.yaml.

One entry per integration resource pattern (the Task's `Resource`), each with
the page it comes from. AWS's pages ("IAM policies for integrated services",
https://docs.aws.amazon.com/step-functions/latest/dg/service-integration-iam-templates.html)
give the policy Step Functions itself would generate; AWS CDK's
aws-stepfunctions-tasks (packages/aws-cdk-lib/aws-stepfunctions-tasks/lib/)
grants the same sets and is the peer encoding cited next to each entry.

A Grant's `resources` turns the Task's Parameters (as the state would send
them) into the ARNs the call touches; ANY means the documentation grants the
action on "*" (Step Functions does not say which resource it calls it on).
An integration without an entry is an error: add its entry, with its page,
before the definition uses it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

ANY = "*"
# A Parameters value the test could not resolve (a path the sample state lacks):
# the role must then grant the action on some resource of the right type.
UNKNOWN = object()

DOCS = "https://docs.aws.amazon.com/step-functions/latest/dg"


@dataclass(frozen=True)
class Account:
    partition: str
    region: str
    account: str

    def arn(self, service: str, resource: str, regional: bool = True) -> str:
        if regional:
            return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"
        return f"arn:{self.partition}:{service}:::{resource}"


Resources = Callable[[dict, Account], list]


@dataclass(frozen=True)
class Grant:
    actions: tuple[str, ...]
    resources: Resources
    why: str = ""


@dataclass(frozen=True)
class Integration:
    doc: str
    grants: tuple[Grant, ...]


class UnknownIntegration(KeyError):
    """A Task Resource this encoding has no entry for."""


# ------------------------------------------------------------------ resource builders

def _name(params: dict, field: str):
    value = params.get(field, UNKNOWN)
    return value if isinstance(value, str) else UNKNOWN


def _named(service: str, kind: str, field: str, lower: bool = False) -> Resources:
    """`arn:...:<service>:<region>:<account>:<kind><name>` with the name the state sends in `field`."""
    def build(params: dict, acct: Account) -> list:
        name = _name(params, field)
        if name is UNKNOWN:
            return [(UNKNOWN, acct.arn(service, kind))]
        # SageMaker puts resource names into ARNs in lower case (CDK's create-endpoint.ts does the same).
        return [acct.arn(service, kind + (name.lower() if lower else name))]
    return build


def _sagemaker(kind: str, field: str) -> Resources:
    return _named("sagemaker", f"{kind}/", field, lower=True)


def _both(*builders: Resources) -> Resources:
    return lambda params, acct: [arn for build in builders for arn in build(params, acct)]


def _any(params: dict, acct: Account) -> list:
    return [ANY]


def _fixed(resource: Callable[[Account], str]) -> Resources:
    return lambda params, acct: [resource(acct)]


def _passed_role(field: str) -> Resources:
    def build(params: dict, acct: Account) -> list:
        name = _name(params, field)
        return [(UNKNOWN, acct.arn("iam", "role/", regional=False))] if name is UNKNOWN else [name]
    return build


def _function(params: dict, acct: Account) -> list:
    name = _name(params, "FunctionName")
    if name is UNKNOWN:
        return [(UNKNOWN, acct.arn("lambda", "function:"))]
    return [name if name.startswith("arn:") else acct.arn("lambda", f"function:{name}")]


def _topic(params: dict, acct: Account) -> list:
    name = _name(params, "TopicArn")
    return [(UNKNOWN, acct.arn("sns", ""))] if name is UNKNOWN else [name]


def _state_machine(params: dict, acct: Account) -> list:
    name = _name(params, "StateMachineArn")
    return [(UNKNOWN, acct.arn("states", "stateMachine:"))] if name is UNKNOWN else [name]


def _executions_of(params: dict, acct: Account) -> list:
    machine = _name(params, "StateMachineArn")
    if machine is UNKNOWN:
        return [(UNKNOWN, acct.arn("states", "execution:"))]
    return [machine.replace(":stateMachine:", ":execution:", 1) + ":*"]


def _events_rule(rule: str) -> Resources:
    return _fixed(lambda acct: acct.arn("events", f"rule/{rule}"))


# ------------------------------------------------------------------ the entries

_TRAINING_SYNC = Integration(
    doc=f"{DOCS}/sagemaker-iam.html (CreateTrainingJob, Run a Job .sync); CDK sagemaker/create-training-job.ts",
    grants=(
        Grant(("sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob"),
              _sagemaker("training-job", "TrainingJobName")),
        # Step Functions adds the tag MANAGED_BY_AWS=STARTED_BY_STEP_FUNCTIONS to the job it
        # creates, and SageMaker authorizes tags on create as sagemaker:AddTags on the job:
        # "is not authorized to perform: sagemaker:AddTags on resource: ...:training-job/..."
        # (aws/aws-cdk#32294, fixed in CDK by aws/aws-cdk#32536, which adds AddTags).
        Grant(("sagemaker:AddTags",), _sagemaker("training-job", "TrainingJobName"),
              why="Step Functions tags the job it creates"),
        Grant(("sagemaker:ListTags",), _any, why='the page grants it on "*"'),
        Grant(("iam:PassRole",), _passed_role("RoleArn")),
        Grant(("events:PutTargets", "events:PutRule", "events:DescribeRule"),
              _events_rule("StepFunctionsGetEventsForSageMakerTrainingJobsRule"),
              why=".sync waits through this managed rule"),
    ),
)

_SAGEMAKER_SDK_TARGETS = {
    # aws-sdk SageMaker actions: the ARN of the resource each one names in its request.
    "EndpointName": "endpoint",
    "EndpointConfigName": "endpoint-config",
    "ModelName": "model",
    "TrainingJobName": "training-job",
}


def _sagemaker_sdk_target(params: dict, acct: Account) -> list:
    for field, kind in _SAGEMAKER_SDK_TARGETS.items():
        if field in params:
            return _sagemaker(kind, field)(params, acct)
    raise UnknownIntegration(f"no resource rule for an aws-sdk SageMaker call with parameters {sorted(params)}")


INTEGRATIONS: dict[str, Integration] = {
    "arn:aws:states:::glue:startJobRun.sync": Integration(
        doc=f"{DOCS}/glue-iam.html (Run a Job .sync); CDK glue/start-job-run.ts (RUN_JOB)",
        grants=(Grant(("glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"),
                      _named("glue", "job/", "JobName")),),
    ),
    "arn:aws:states:::glue:startJobRun": Integration(
        doc=f"{DOCS}/glue-iam.html (Request Response); CDK glue/start-job-run.ts (REQUEST_RESPONSE)",
        grants=(Grant(("glue:StartJobRun",), _named("glue", "job/", "JobName")),),
    ),
    "arn:aws:states:::sagemaker:createTrainingJob.sync": _TRAINING_SYNC,
    "arn:aws:states:::sagemaker:createEndpoint": Integration(
        doc=f"{DOCS}/sagemaker-iam.html (CreateEndpoint); CDK sagemaker/create-endpoint.ts",
        grants=(
            Grant(("sagemaker:CreateEndpoint",),
                  _both(_sagemaker("endpoint", "EndpointName"), _sagemaker("endpoint-config", "EndpointConfigName"))),
            Grant(("sagemaker:ListTags",), _any, why='the page grants it on "*"'),
        ),
    ),
    "arn:aws:states:::lambda:invoke": Integration(
        doc=f"{DOCS}/lambda-iam.html; CDK lambda/invoke.ts",
        grants=(Grant(("lambda:InvokeFunction",), _function),),
    ),
    "arn:aws:states:::lambda:invoke.waitForTaskToken": Integration(
        doc=f"{DOCS}/lambda-iam.html (the callback pattern needs the same call); CDK lambda/invoke.ts",
        grants=(Grant(("lambda:InvokeFunction",), _function),),
    ),
    "arn:aws:states:::sns:publish": Integration(
        doc=f"{DOCS}/sns-iam.html; CDK sns/publish.ts",
        grants=(Grant(("sns:Publish",), _topic),),
    ),
    "arn:aws:states:::sns:publish.waitForTaskToken": Integration(
        doc=f"{DOCS}/sns-iam.html; CDK sns/publish.ts",
        grants=(Grant(("sns:Publish",), _topic),),
    ),
    "arn:aws:states:::states:startExecution": Integration(
        doc=f"{DOCS}/stepfunctions-iam.html (Request Response); CDK stepfunctions/start-execution.ts",
        grants=(Grant(("states:StartExecution",), _state_machine),),
    ),
    "arn:aws:states:::states:startExecution.sync:2": Integration(
        doc=f"{DOCS}/stepfunctions-iam.html (Run a Job .sync); CDK stepfunctions/start-execution.ts",
        grants=(
            Grant(("states:StartExecution",), _state_machine),
            Grant(("states:DescribeExecution", "states:StopExecution"), _executions_of),
            Grant(("events:PutTargets", "events:PutRule", "events:DescribeRule"),
                  _events_rule("StepFunctionsGetEventsForStepFunctionsExecutionRule")),
        ),
    ),
}

# AWS SDK integrations (arn:aws:states:::aws-sdk:<service>:<apiAction>): the role needs the
# service's own IAM action for the API, "<service>:<ApiAction>"
# (https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html).
# Services listed here have a rule for the resource the call names; any other service
# needs its rule first.
AWS_SDK_SERVICES: dict[str, tuple[str, Resources]] = {
    "sagemaker": (f"{DOCS}/supported-services-awssdk.html; resource types: "
                  "https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html",
                  _sagemaker_sdk_target),
}


def integration_for(resource: str) -> Integration:
    """The entry for a Task's Resource. Raises UnknownIntegration when there is none."""
    if resource in INTEGRATIONS:
        return INTEGRATIONS[resource]
    prefix = "arn:aws:states:::aws-sdk:"
    if resource.startswith(prefix):
        parts = resource[len(prefix):].split(":")
        if len(parts) == 2 and "." not in parts[1] and parts[0] in AWS_SDK_SERVICES:
            service, api = parts
            doc, resources = AWS_SDK_SERVICES[service]
            return Integration(doc=doc, grants=(Grant((f"{service}:{api[0].upper()}{api[1:]}",), resources),))
    if resource.startswith("arn:aws:lambda:"):
        # A Task whose Resource is the function itself: the same permission as lambda:invoke.
        return Integration(doc=f"{DOCS}/lambda-iam.html",
                           grants=(Grant(("lambda:InvokeFunction",), lambda params, acct: [resource]),))
    raise UnknownIntegration(
        f"no IAM entry for the integration {resource}: add it to tests/template/sfn_integration_policies.py "
        "from the Step Functions documentation before the definition uses it"
    )


def needed(resource: str, params: dict, acct: Account) -> list[tuple[str, object, str]]:
    """(action, ARN or ANY or (UNKNOWN, ARN prefix), source) for one Task state."""
    integration = integration_for(resource)
    return [
        (action, arn, integration.doc)
        for grant in integration.grants
        for arn in grant.resources(params, acct)
        for action in grant.actions
    ]
