"""statemachine/cleanup.asl.json, run: a stopped, timed-out or failed pipeline
execution leaves nothing running, however long a QA endpoint takes to leave
Creating. Its input is the EventBridge event AWS sends for the execution."""
from __future__ import annotations

import copy

import standins
from standins import CLEANUP_DEFINITION, PRODUCTION, Endpoint, World

# "Execution aborted" as the Step Functions developer guide shows it
# (https://docs.aws.amazon.com/step-functions/latest/dg/eventbridge-integration.html, formerly cw-events.html),
# with this pipeline's execution (its name is the run id) filled in.
ABORTED_EVENT = {
    "version": "0",
    "id": "315c1398-40ff-a850-213b-158f73e60175",
    "detail-type": "Step Functions Execution Status Change",
    "source": "aws.states",
    "account": "012345678912",
    "time": "2019-02-26T19:42:21Z",
    "region": "us-east-1",
    "resources": ["arn:aws:states:us-east-1:012345678912:execution:car-pipeline:run-0001"],
    "detail": {
        "executionArn": "arn:aws:states:us-east-1:012345678912:execution:car-pipeline:run-0001",
        "stateMachineArn": "arn:aws:states:us-east-1:012345678912:stateMachine:car-pipeline",
        "name": "run-0001",
        "status": "ABORTED",
        "startDate": 1551225014968,
        "stopDate": 1551225017576,
        "input": "{}",
        "inputDetails": {"included": True},
        "output": None,
        "outputDetails": None,
    },
}


def creating_world(polls: int) -> World:
    """A run stopped while its QA endpoint was being created (and its training job still running)."""
    world = World(polls_until_ready=polls)
    world.endpoints[PRODUCTION] = Endpoint("previous-config", "InService")
    world.endpoints["run-0001-qa"] = Endpoint("run-0001-config", "Creating")
    world._pending["run-0001-qa"] = Endpoint("run-0001-config", "InService")
    world.training_jobs["run-0001-train"] = standins.TrainingJob({"TrainingJobName": "run-0001-train"})
    return world


def test_a_stopped_run_is_cleaned_up_once_its_qa_endpoint_settles(sfn_local):
    outcome = standins.run(creating_world(polls=3), execution_input=ABORTED_EVENT, definition=CLEANUP_DEFINITION)

    assert outcome.status == "SUCCEEDED"
    # It waited while SageMaker refused the deletion (Creating), then deleted it; production untouched.
    assert len(outcome.calls("CleanUpRun")) == 4
    assert outcome.states.count("WaitForQAEndpointToSettle") == 3
    assert outcome.world.endpoints == {PRODUCTION: Endpoint("previous-config", "InService")}
    assert outcome.world.training_jobs["run-0001-train"].status == "Stopped"
    assert outcome.output["cleanup"]["action"] == "deleted"


def test_a_run_that_created_nothing_ends_at_once(sfn_local):
    event = copy.deepcopy(ABORTED_EVENT)
    event["detail"]["status"] = "TIMED_OUT"
    world = World()
    world.endpoints[PRODUCTION] = Endpoint("previous-config", "InService")
    outcome = standins.run(world, execution_input=event, definition=CLEANUP_DEFINITION)

    assert outcome.status == "SUCCEEDED"
    assert len(outcome.calls("CleanUpRun")) == 1
    assert outcome.output["cleanup"]["action"] == "absent"
    assert outcome.world.endpoints == {PRODUCTION: Endpoint("previous-config", "InService")}


def test_a_qa_endpoint_named_like_production_is_never_deleted(sfn_local):
    outcome = standins.run(World(endpoints={PRODUCTION: Endpoint("c", "InService")}),
                           execution_input={"run_id": "x", "names": {"qa_endpoint": PRODUCTION}},
                           definition=CLEANUP_DEFINITION)

    assert outcome.status == "SUCCEEDED"
    assert outcome.output["cleanup"]["action"] == "refused"
    assert PRODUCTION in outcome.world.endpoints
