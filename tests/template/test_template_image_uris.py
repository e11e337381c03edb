"""The template's per-region image URIs are the sagemaker SDK's."""
from __future__ import annotations

import re

import botocore.session
import pytest

import template_support  # noqa: F401  (puts scripts/ on sys.path)
import image_uris

SYNTHETIC_TABLES = {
    "xgboost.json": {"training": {"versions": {"1.7-1": {"repository": "sagemaker-xgboost", "registries": {
        "us-east-1": "683313688378", "cn-north-1": "450853457545", "eu-west-1": "141502667606"}}}}},
    "sparkml-serving.json": {"versions": {"3.3": {"repository": "sagemaker-sparkml-serving", "registries": {
        "us-east-1": "683313688378", "cn-north-1": "450853457545"}}}},
}


def test_uris_cover_standard_regions_with_both_images():
    uris = image_uris.image_uris(SYNTHETIC_TABLES, image_uris.botocore_partitions())
    # eu-west-1 lacks SparkML Serving (the pipeline cannot run there); cn-north-1 is in aws-cn.
    assert sorted(uris) == ["us-east-1"]
    assert uris["us-east-1"]["XGBoost"] == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def test_every_mapped_region_is_in_the_aws_partition(template):
    """The definition's integration ARNs (arn:aws:states:::...) and the untested service
    principals hold in the `aws` partition only: botocore's own partition data decides."""
    session = botocore.session.get_session()
    regions = template["Mappings"]["ImageUris"]
    outside = {region: session.get_partition_for_region(region) for region in regions
               if session.get_partition_for_region(region) != "aws"}
    assert not outside, f"regions outside the aws partition in ImageUris: {outside}"
    assert "us-east-1" in regions and "eu-west-1" in regions


def test_the_definition_names_integrations_of_the_aws_partition(definition_text):
    assert not re.search(r"arn:aws-[a-z-]+:", definition_text)


def test_a_version_missing_from_the_sdk_is_an_error():
    tables = {**SYNTHETIC_TABLES, "sparkml-serving.json": {"versions": {"2.4": {"repository": "x", "registries": {}}}}}
    with pytest.raises(KeyError, match="no version 3.3"):
        image_uris.image_uris(tables, image_uris.botocore_partitions())


def test_template_mapping_is_what_the_pinned_sdk_says():
    """Downloads sagemaker==<pin> from PyPI (no install) and regenerates the block."""
    try:
        generated = image_uris.generate()
    except image_uris.SdkUnavailable as error:
        pytest.fail(f"cannot check the image URIs offline: {error}. This test needs PyPI (CI has it).")
    current = image_uris.current_block(image_uris.TEMPLATE.read_text())
    assert current == generated, "template.yaml's ImageUris differ from the SDK: run python scripts/image_uris.py --write"
