"""Cross-cutting checks of the functions: packaging, shared name rules, and
that docs/architecture.md lists every AWS action each function's code calls
(template.yaml's least-privilege IAM is written from that list)."""
from __future__ import annotations

import re
from pathlib import Path

import boto3
import pytest

from lambda_fixtures import REGION
from pipeline_common import names, timeutil

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS = sorted(p.parent.name for p in (REPO / "functions").glob("*/app.py"))
# Client variable names used in the functions -> (boto3 service, IAM prefix).
CLIENTS = {
    "s3": ("s3", "s3"),
    "sagemaker": ("sagemaker", "sagemaker"),
    "runtime": ("sagemaker-runtime", "sagemaker"),
    "dynamodb": ("dynamodb", "dynamodb"),
    "sns": ("sns", "sns"),
    "sfn": ("stepfunctions", "states"),
}
# Shared-layer helpers and the IAM actions they need.
SHARED_HELPERS = {
    "load_manifest": ["s3:GetObject", "s3:ListBucket"],
    "get_json": ["s3:GetObject"],
    "get_bytes": ["s3:GetObject"],
    "put_json": ["s3:PutObject"],
    "list_data_objects": ["s3:ListBucket"],
    # pipeline_common.models: CopyObject with tags (GetObject on the source, PutObject and
    # PutObjectTagging on the copy), HEAD after a listing.
    "keep_model_file": ["s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:PutObjectTagging"],
    "mark_production": ["s3:PutObjectTagging"],
    "mark_superseded": ["s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:PutObjectTagging"],
    # pipeline_common.registry: the version's description, then a listing of each model file.
    "deployable_package": ["sagemaker:DescribeModelPackage", "s3:ListBucket"],
    "group_versions": ["sagemaker:ListModelPackages"],
}
# HeadObject is authorized as s3:GetObject (S3 API reference, HeadObject: "you must have the s3:GetObject permission").
IAM_NAME_EXCEPTIONS = {"s3:ListObjectsV2": "s3:ListBucket", "s3:HeadObject": "s3:GetObject"}


def doc_sections() -> dict[str, str]:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Lambda functions", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^### ([a-z_]+)(?: \(.*\))?[ \t]*$|^### .*$", section, flags=re.M)
    # Headings that are not a function name ("Two uploads ...") split but name nothing.
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2) if parts[i]}


def actions_called(function: str) -> set[str]:
    source = (REPO / "functions" / function / "app.py").read_text(encoding="utf-8")
    actions = set()
    for variable, (service, prefix) in CLIENTS.items():
        mapping = boto3.client(service, region_name=REGION).meta.method_to_api_mapping
        for method in re.findall(rf"\b{variable}\.([a-z_0-9]+)\b", source):
            if method in mapping:
                action = f"{prefix}:{mapping[method]}"
                actions.add(IAM_NAME_EXCEPTIONS.get(action, action))
    for helper, needed in SHARED_HELPERS.items():
        if re.search(rf"\b{helper}\(", source):
            actions.update(needed)
    return actions


def test_every_function_is_documented():
    assert set(doc_sections()) == set(FUNCTIONS)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_docs_list_every_action_the_code_calls(function):
    calls = actions_called(function)
    section = doc_sections()[function]
    # Every function talks to AWS (else it would not be a Lambda here).
    assert calls, function
    missing = sorted(action for action in calls if f"`{action}`" not in section)
    assert not missing, f"docs/architecture.md, ### {function}: add {missing}"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_packaging(function):
    folder = REPO / "functions" / function
    assert (folder / "requirements.txt").read_text().split() == ["aws-lambda-powertools[tracer]==3.23.0"]
    assert re.search(r"^def lambda_handler\(event, context\):", (folder / "app.py").read_text(), flags=re.M)


@pytest.mark.parametrize(
    "run_id, expected",
    [
        ("car-0123456789ab", "car-0123456789ab"),  # start_run's ids are used as they are
        ("3f1d5e0a-1b2c-4d5e-8f90-123456789abc", "3f1d5e0a-1b2c-4d5e-8f90-123456789abc"),  # a console UUID
    ],
)
def test_valid_run_ids_are_kept(run_id, expected):
    assert names.sagemaker_base(run_id) == expected


@pytest.mark.parametrize("run_id", ["Upper-Case", "with_underscore", "x" * 41, "-leading", "trailing-", "a--"])
def test_other_run_ids_are_sanitized_and_stay_distinct(run_id):
    base = names.sagemaker_base(run_id)
    assert names.is_sagemaker_name(base) and len(base) <= names.MAX_RUN_ID and base == base.lower()
    assert base != names.sagemaker_base(run_id + "2")


@pytest.mark.parametrize(
    "earlier, later",
    [
        ("2025-01-02T03:04:05.100Z", "2025-01-02T03:04:05.2Z"),
        ("2025-01-02T03:04:05Z", "2025-01-02T03:04:05.001Z"),
        ("2025-01-02T04:04:05+01:00", "2025-01-02T03:04:05.5Z"),  # same instant + 0.5 s, other zone
        ("2025-01-02T03:04:05.999999+00:00", "2025-01-02T03:04:06Z"),
    ],
)
def test_start_times_order_as_instants_not_strings(earlier, later):
    assert timeutil.epoch_micros(timeutil.parse_iso(earlier)) < timeutil.epoch_micros(timeutil.parse_iso(later))
