"""What each Task of the real definition receives, checked against an
independent evaluation of its Parameters (tests/asl_reference.py) over the
control-flow paths: the success path and the failure path together reach
every Task state, and none may receive an unresolved `.$` field or a value
other than the one its path selects. The same check runs on real local runs
in tests/localmode/test_local_e2e.py."""
from __future__ import annotations

import json

import boto3

import asl_reference
import standins
from localmode import sfn
from standins import World

DEFINITION = json.loads(standins.DEFINITION.read_text(encoding="utf-8"))


def history_of(execution_arn: str) -> list[dict]:
    client = boto3.client("stepfunctions", region_name=standins.REGION)
    pages = client.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
    return [event for page in pages for event in page["events"]]


def rendered_definition() -> dict:
    """The definition with its substitutions filled, as the state machine was created."""
    return json.loads(sfn.render_definition(standins.DEFINITION.read_text(encoding="utf-8"), standins.substitutions()))


def rollback_world() -> World:
    world = World()
    world.endpoints[standins.PRODUCTION] = standins.Endpoint("newer-config", "InService")
    world.packages[f"arn:aws:sagemaker:{standins.REGION}:{standins.ACCOUNT}:model-package/{standins.PRODUCTION}/1"] = {
        "version": 1, "status": "Approved", "description": "approved", "run_id": "old", "config": "old-config"}
    return world


def test_every_task_receives_its_parameters_resolved(sfn_local):
    throttled = standins.client_error("ThrottlingException", "Rate exceeded", "CreateTrainingJob")
    outcomes = [
        # Training throttled once, then its answer lost: RecoverTraining, the backoff and the wait loop run too.
        standins.run(World(sagemaker_errors={"CreateTrainingJob": [throttled]}, lost_responses={"CreateTrainingJob"}),
                     name="run-0001"),
        standins.run(World(approval="reject"), name="run-0002"),
        # The cleanup failing as well: the plainer failure email goes out.
        standins.run(World(failures={"CreateQAEndpoint": sfn.TaskFailed("SageMaker.AmazonSageMakerException", "no"),
                                     "CleanupAfterFailure": standins.lambda_failure("AccessDenied", "no")}),
                     name="run-0003"),
        standins.run(rollback_world(), {"rollback": {"model_package_version": 1}}, name="run-0004"),
    ]
    assert [o.status for o in outcomes] == ["SUCCEEDED", "FAILED", "FAILED", "SUCCEEDED"]
    calls = [call for outcome in outcomes for call in outcome.dispatcher.calls]
    definition = rendered_definition()

    assert asl_reference.tasks_not_called(definition, calls) == []
    assert asl_reference.check_task_parameters(definition, calls, history_of) == []
    # What the issue found: TrainXGBoost's RoleArn is the one PrepareTraining planned.
    trains = [c for c in outcomes[0].dispatcher.calls if c.request.state_name == "TrainXGBoost"]
    assert len(trains) == 2
    assert {c.request.parameters["RoleArn"] for c in trains} == {f"arn:aws:iam::{standins.ACCOUNT}:role/sagemaker"}
