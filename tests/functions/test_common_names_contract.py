"""pipeline_common.names: the run id start_run derives from an upload, and the SageMaker
base name every later step derives from the run id. Both must be stable (a re-delivered
S3 event, or one delivered after a redeploy, must map to the same run) and valid
SageMaker names (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateModel.html:
ModelName pattern ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62})."""
from __future__ import annotations

import hashlib
import re

from pipeline_common import names


def test_the_digest_is_sha256_of_the_nul_joined_parts():
    # Written out here rather than computed by the module: if the digest's recipe changed, an
    # upload re-delivered after a deploy would get a new run id and start a second run.
    expected = hashlib.sha256(b"artifacts\0uploads/car.data\0etag-1").hexdigest()[:12]
    assert names.digest("artifacts", "uploads/car.data", "etag-1") == expected
    assert names.run_id_from_parts("car.data", "artifacts", "uploads/car.data", "etag-1") == f"car-data-{expected}"


def test_a_stem_cut_at_a_separator_leaves_no_hyphen_before_the_digest():
    # 26 letters, then a separator at the cut: the stem is cut to 27 characters, the 27th a hyphen.
    run_id = names.run_id_from_parts("a" * 26 + "_" + "b" * 10, "bucket", "key", "etag")
    assert "--" not in run_id
    assert re.fullmatch(r"a{26}-[0-9a-f]{12}", run_id)


def test_leading_punctuation_does_not_use_up_the_stem():
    # A file named "__2024 quarterly export of the car evaluation data.csv" keeps as much of
    # its name as one without the underscores.
    long_name = "quarterly-export-of-the-car-evaluation-data.csv"
    assert names.sanitize_stem("__" + long_name) == names.sanitize_stem(long_name) == "quarterly-export-of-the-car"


def test_the_longest_run_id_start_run_makes_is_used_unchanged():
    # start_run's ids are at most 27 + 1 + 12 = 40 characters; one of exactly 40 must name the
    # SageMaker resources as it is, or the resources would not carry the run's id.
    run_id = names.run_id_from_parts("x" * 60, "bucket", "key", "etag")
    assert len(run_id) == names.MAX_RUN_ID == 40
    assert names.sagemaker_base(run_id) == run_id
