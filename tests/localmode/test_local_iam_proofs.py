"""The two first-run IAM blockers the outside audits found fail locally as they would on AWS: the QATestRole
that could look only at DefaultDataset's production endpoint, and the state machine role without
sagemaker:AddTags. Each runs template.yaml as it was before its fix. And `--no-iam` turns the checks off.
(Its own module: each test makes its own local account, which cannot coexist with another module's.)"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from localmode import REPO_ROOT, datasets, runner
from localmode.session import LocalPipeline

pytestmark = [pytest.mark.slow, pytest.mark.spark]


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    text = (REPO_ROOT / "template.yaml").read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path = tmp_path / "template.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_the_qa_role_before_the_second_audit_fails_a_non_default_datasets_run_at_run_qa_tests(tmp_path, car_data):
    """Before 85d646f, QATestRole could describe only DefaultDataset's production endpoint."""
    template = _variant(tmp_path, "                  - !Sub arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}"
                                  ":endpoint/*${ProductionEndpointSuffix}\n\n  QATestFunction:",
                        "\n  QATestFunction:")
    data, _ = datasets.build("penguins", tmp_path / "data")
    with LocalPipeline(tmp_path / "account", say=lambda line: None, template=template) as pipeline:
        result = pipeline.run(data, decision="approve", dataset="penguins")
    assert result.report["status"] == "FAILED" and result.report["failure"]["state"] == "RunQATests"
    [denial] = result.report["iam"]["denials"]
    endpoint = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/penguins-prod"
    assert (denial["principal"], denial["action"], denial["resource"], denial["state"]) == (
        "function qa_test", "sagemaker:DescribeEndpoint", endpoint, "RunQATests")
    assert f"not authorized to perform: sagemaker:DescribeEndpoint on resource: {endpoint}" in \
        json.dumps(result.report["failure"])


def test_the_state_machine_role_without_add_tags_fails_at_train_xgboost(tmp_path, car_data):
    """Before the first audit, the state machine role could not tag the training job Step Functions creates."""
    template = _variant(tmp_path, "                  - sagemaker:StopTrainingJob\n                  - sagemaker:AddTags\n",
                        "                  - sagemaker:StopTrainingJob\n")
    with LocalPipeline(tmp_path / "account", say=lambda line: None, template=template) as pipeline:
        result = pipeline.run(car_data, decision="approve")
    assert result.report["status"] == "FAILED" and result.report["failure"]["state"] == "TrainXGBoost"
    [denial] = result.report["iam"]["denials"]
    assert (denial["principal"], denial["action"], denial["state"]) == (
        "state machine PipelineStateMachine", "sagemaker:AddTags", "TrainXGBoost")
    assert denial["resource"].endswith(f":training-job/{result.run_id}-train")
    assert "is not authorized to perform: sagemaker:AddTags" in json.dumps(result.report["failure"])


def test_without_iam_the_run_says_so_and_nothing_is_checked(tmp_path, car_data, capsys):
    code = runner.main(["--data", str(car_data), "--out", str(tmp_path / "run"), "--reject", "--no-iam"])
    report = json.loads((tmp_path / "run" / "report.json").read_text(encoding="utf-8"))
    assert code == 3 and report["iam"] == {"enforced": False}
    assert "IAM: not enforced (--no-iam): every call runs with unlimited permissions" in capsys.readouterr().out
