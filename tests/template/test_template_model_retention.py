"""What the artifacts bucket's lifecycle rules delete, and when, evaluated the
way S3 documents it, for each kind of object the pipeline writes: the model
files any endpoint may load again are never deleted while in use."""
from __future__ import annotations

import sys

import pytest
from template_support import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "functions" / "common"))
from pipeline_common import models  # noqa: E402

DAY = 86400


def expiry_days(rules: list[dict], key: str, tags: dict[str, str], parameters: dict[str, int]) -> int | None:
    """Days after creation when the current version expires, or None.

    S3's rules, as documented: a rule applies when it is enabled and the object
    matches its filter; a rule with a prefix and tags is an And filter (the
    key starts with the prefix AND every tag is on the object with that value);
    a rule without a filter applies to every object; when several expiration
    actions apply, the earliest wins. Days count from the object's creation.
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/intro-lifecycle-filters.html
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-configuration-examples.html
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_LifecycleRuleAndOperator.html
    """
    found = []
    for rule in rules:
        if rule.get("Status") != "Enabled" or "ExpirationInDays" not in rule:
            continue
        if not key.startswith(rule.get("Prefix", "")):
            continue
        if any(tags.get(f["Key"]) != f["Value"] for f in rule.get("TagFilters", [])):
            continue
        days = rule["ExpirationInDays"]
        found.append(parameters[days["Ref"]] if isinstance(days, dict) else int(days))
    return min(found) if found else None


@pytest.fixture(scope="module")
def rules(template):
    return template["Resources"]["ArtifactsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]


@pytest.fixture(scope="module")
def parameters(template):
    return {"RunRetentionDays": 90, "SupersededModelRetentionDays": 365}


def model_key(part="xgboost"):
    return models.model_file_key("car-8f14e45fceea", part)


def test_production_model_files_never_expire(rules, parameters):
    for part in ("preprocess", "xgboost", "postprocess"):
        assert expiry_days(rules, model_key(part), {models.STATE_TAG: models.PRODUCTION}, parameters) is None


def test_models_never_deployed_expire_with_their_run(rules, parameters):
    assert expiry_days(rules, model_key(), {models.STATE_TAG: models.CANDIDATE}, parameters) == 90
    assert expiry_days(rules, "runs/car-8f14e45fceea/model/preprocess/model.tar.gz", {}, parameters) == 90


def test_superseded_models_expire_after_their_own_period(rules, parameters):
    assert expiry_days(rules, model_key(), {models.STATE_TAG: models.SUPERSEDED}, parameters) == 365


def test_dependencies_and_untagged_objects_stay(rules, parameters):
    assert expiry_days(rules, "deps/mleap-glue-deps.jar", {}, parameters) is None
    # The runs/ rule does not reach models/, whatever the tags.
    assert expiry_days(rules, model_key(), {}, parameters) is None


def test_the_rules_use_the_tag_the_functions_write(rules):
    tagged = {(f["Key"], f["Value"]) for rule in rules for f in rule.get("TagFilters", [])}
    assert tagged == {(models.STATE_TAG, models.CANDIDATE), (models.STATE_TAG, models.SUPERSEDED)}
    assert all(rule.get("Prefix") == models.MODELS_PREFIX for rule in rules if rule.get("TagFilters"))


def test_a_model_waiting_for_approval_outlives_the_longest_window(template):
    params = template["Parameters"]
    assert params["RunRetentionDays"]["MinValue"] * DAY > params["ApprovalWindowSeconds"]["MaxValue"]
