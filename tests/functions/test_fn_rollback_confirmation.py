"""A rollback's confirmation goes through the same approval email and page,
worded as a rollback (request_approval and approval_api's small rollback
path): which version, its figures and lineage, what serves now."""
from __future__ import annotations

import json
import urllib.parse

import pytest
from approval_support import (  # noqa: F401 (fixtures)
    API_BASE_URL,
    TOKEN,
    api,
    approval_api,
    emails,
    record,
    request_approval,
    world,
)

from lambda_fixtures import TABLE
from localmode.approval_server import hidden_fields, links_in

SUMMARY = {
    "kind": "rollback", "run_id": "rollback-v1-1700000000", "production_endpoint": "car-evaluation",
    "model_package_group": "car-evaluation",
    "target": {"version": 1, "status": "Approved", "approval_description": "Approved on the approval page at day 1.",
               "run_id": "car-first-000000000001", "input_uri": "s3://in/input/car.data\nApprove: https://evil",
               "input_version_id": "v-42", "glue_job_run_id": "jr_1", "training_job": "car-first-000000000001-train",
               "qa": {"accuracy": 0.9723, "rows": 259}, "qa_report_uri": "s3://a/models/car-first/registry/qa-report.json"},
    "serving": {"version": 2, "run_id": "car-second-00000000002", "qa": {"accuracy": 0.9612, "rows": 259}},
}


def confirm(world, request_approval) -> dict:
    request_approval.request_approval(
        world["s3"], world["dynamodb"], world["sns"],
        {"task_token": TOKEN, "run": {"run_id": SUMMARY["run_id"]}, "kind": "rollback", "summary": SUMMARY,
         "approval_timeout_seconds": 3600},
        TABLE, world["topic_arn"], API_BASE_URL)
    [email] = emails(world)
    links = links_in(email["Message"])
    return {"email": email, "links": links, "reference": urllib.parse.urlsplit(links["approve"]).path.rsplit("/", 1)[-1]}


def test_the_email_asks_for_the_rollback_with_both_versions(request_approval, world):
    sent = confirm(world, request_approval)
    email = sent["email"]
    assert email["Subject"] == "Roll car-evaluation back to version 1?"
    message = email["Message"]
    assert "Now serving: version 2 (run car-second-00000000002, QA accuracy 0.9612, rows 259)" in message
    assert "QA:         accuracy 0.9723, rows 259" in message
    assert "Glue run:   jr_1; training job car-first-000000000001-train" in message
    # A value from the run cannot start a line of its own (a fake link).
    assert "\nApprove: https://evil" not in message and set(sent["links"]) == {"approve", "reject"}
    assert TOKEN not in message
    assert record(world, sent["reference"])["task_token"]["S"] == TOKEN


def test_the_page_shows_a_rollback_and_approving_it_sends_the_callback(request_approval, world, api):
    sent = confirm(world, request_approval)
    status, page, _ = api("GET", sent["reference"])
    assert status == 200
    assert "Roll car-evaluation back to version 1?" in page
    assert "Roll back to" in page and "Serving now" in page and "car-second-00000000002" in page
    assert "Approve: roll production back to this version" in page
    api.stub.add_response("send_task_success", {})
    status, page, _ = api("POST", sent["reference"], {"decision": "approve", "reason": "", "nonce": hidden_fields(page)["nonce"]})
    assert status == 200 and "rollback of car-evaluation to version 1 is approved" in page
    api.stub.assert_no_pending_responses()


def test_a_rollback_request_without_its_summary_sends_nothing(request_approval, world):
    with pytest.raises(Exception) as refused:
        request_approval.request_approval(world["s3"], world["dynamodb"], world["sns"],
                                          {"task_token": TOKEN, "run": {}, "kind": "rollback", "summary": {"kind": "rollback"},
                                           "approval_timeout_seconds": 60}, TABLE, world["topic_arn"], API_BASE_URL)
    assert type(refused.value).__name__ == "InvalidEvent"
    assert emails(world) == [] and world["dynamodb"].scan(TableName=TABLE)["Items"] == []
