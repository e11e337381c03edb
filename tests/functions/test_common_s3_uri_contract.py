"""pipeline_common.s3.parse_s3_uri: the bucket and key every function reads an event's or
the manifest's S3 URIs with."""
from __future__ import annotations

import pytest

from pipeline_common.s3 import parse_s3_uri


@pytest.mark.parametrize("uri, expected", [
    # A prefix joined with a key that starts with "/" (a template parameter ending in "/"):
    # the doubled slash still names the key.
    ("s3://artifacts//runs/r1/manifest.json", ("artifacts", "runs/r1/manifest.json")),
    # The key is kept as stored: capitals (XGBoost), a prefix's trailing "/", and characters a
    # URL parser would treat specially.
    ("s3://artifacts/XGBoost/model.tar.gz", ("artifacts", "XGBoost/model.tar.gz")),
    ("s3://artifacts/runs/r1/data/test/", ("artifacts", "runs/r1/data/test/")),
    ("s3://uploads/car data?v=1#2 %41.csv", ("uploads", "car data?v=1#2 %41.csv")),
    ("s3://uploads/ spaced.csv ", ("uploads", " spaced.csv ")),
    ("s3://uploads", ("uploads", "")),
])
def test_the_key_is_everything_after_the_bucket(uri, expected):
    assert parse_s3_uri(uri) == expected
