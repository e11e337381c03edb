"""Whole local runs under the template's IAM (localmode.iam).

- Every path of localmode.iam.scenarios (four datasets, a second run, rejection, alarms' rollback, a
  rollback, a lost training answer, a stop and its cleanup workflow, ...) runs with zero denials.
- The policy mutation over those runs: every Allow statement of every role is needed by some run, or
  template.yaml says why no local run can need it (Metadata: LocalIam: Unexercised).
(test_local_iam_proofs.py: the audits' first-run blockers fail locally as they would on AWS.)
"""
from __future__ import annotations

import json

import pytest

from localmode.iam.mutation import replay, table
from localmode.iam.scenarios import run_scenarios
from localmode.session import LocalPipeline

pytestmark = [pytest.mark.slow, pytest.mark.spark]


@pytest.fixture(scope="module")
def scenario_runs(tmp_path_factory, car_data):
    work = tmp_path_factory.mktemp("iam-scenarios")
    with LocalPipeline(work / "account", say=lambda line: None, record_iam=True) as pipeline:
        results = run_scenarios(pipeline, car_data, work)
        yield pipeline, results


def test_every_path_runs_with_zero_denials(scenario_runs):
    _, results = scenario_runs
    denials = {name: result.report["iam"]["denials"] for name, result in results.items()}
    assert all(not found for found in denials.values()), json.dumps(denials, indent=1)
    outcomes = {name: result.report["outcome"] for name, result in results.items()}
    expected = {"car approved": "deployed", "car approved again": "deployed", "car rejected": "rejected",
                "car rolled back by its alarms": "failed", "rollback to version 1": "deployed",
                "car training answer lost": "rejected", "car training failed": "failed",
                "car stopped while its QA endpoint exists": "interrupted",
                "car stopped while it waits for approval": "interrupted",
                "an upload under an unknown dataset": "failed",
                "penguins approved": "deployed", "penguins approved again": "deployed",
                "penguins rollback to version 1": "deployed", "diabetes approved": "deployed",
                "penguins stopped while it waits for approval": "interrupted"}
    assert {name: outcomes[name] for name in expected} == expected
    # The stop's cleanup ran as RunEndedRule's target role, under its own policy.
    assert results["car stopped while its QA endpoint exists"].report["cleanup"]["status"] == "SUCCEEDED"
    # A run stopped during approval ran no Catch: the cleanup workflow rejected its pending version.
    for name in ("car stopped while it waits for approval", "penguins stopped while it waits for approval"):
        stopped = results[name]
        [version] = [entry for entry in stopped.report["registry"] if entry["run_id"] == stopped.run_id]
        assert stopped.report["cleanup"]["result"]["registry"]["action"] == "rejected"
        assert (version["status"], version["approval_description"]) == (
            "Rejected", "Not deployed: the execution was stopped before a decision.")
    assert all(result.report["iam"]["requests_authorized"] > 0 for result in results.values())


def test_every_allow_statement_is_needed_by_some_run_or_explained_in_the_template(scenario_runs):
    pipeline, _ = scenario_runs
    findings = replay(pipeline.stack_iam, pipeline.enforcer.record, pipeline.stack.account)
    unexplained = [f for f in findings if f.over_grant or f.stale_explanation]
    assert not unexplained, table(unexplained)
    # The statements that hold each dataset's own names: removing the per-dataset entry breaks a penguins run.
    by_label = {f.statement: f for f in findings}
    suffixed = [f for label, f in by_label.items() if label.endswith("*-prod]") or label.endswith("*-prod/*]")]
    assert suffixed and all(f.needed_by and "penguins" in f.needed_by for f in suffixed), table(suffixed)


def test_the_trained_model_is_encrypted_with_the_stacks_key(scenario_runs):
    # OutputDataConfig.KmsKeyId: without it SageMaker would use the account's aws/s3 key.
    import boto3

    from localmode.workers import s3util

    pipeline, results = scenario_runs
    bucket, key = s3util.split_uri(results["car approved"].report["artifacts"]["model_artifacts"])
    head = boto3.client("s3").head_object(Bucket=bucket, Key=key)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", pipeline.stack.get_att("PipelineKey", "Arn"))
