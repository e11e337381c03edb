"""Local data capture against what AWS documents for it
(https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-endpoint.html and
API_DataCaptureConfig): the percentage of requests sampled, the encodings, the capture modes, the key layout."""
from __future__ import annotations

import base64
import datetime
import json
import math
import random
import re

import boto3
import pytest
from moto import mock_aws

from localmode.serving.capture import CaptureWriter, capture_record

WHEN = datetime.datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=datetime.timezone.utc)
CONFIG = {"EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": "s3://bucket/capture",
          "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
          "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]}}


@pytest.mark.parametrize("percentage", [0, 30, 100])
def test_the_sampling_percentage_is_the_share_of_requests_captured(percentage):
    writer = CaptureWriter(s3=None, rng=random.Random(7))
    n = 4000
    captured = sum(writer.offer({**CONFIG, "InitialSamplingPercentage": percentage}, "e", "AllTraffic",
                                b"a", "text/csv", b"b", "text/csv") for _ in range(n))
    expected = n * percentage / 100
    # Four standard deviations of a binomial count: a wrong rule (e.g. every n-th, or per file) is far outside.
    assert abs(captured - expected) <= 4 * math.sqrt(n * percentage / 100 * (1 - percentage / 100)) + 0.5


def test_bodies_of_unlisted_types_and_configs_without_a_header_are_base64():
    record = capture_record({**CONFIG, "CaptureContentTypeHeader": None}, b"1,2", "text/csv", b"\x00\xff",
                            "application/octet-stream", WHEN, "id")
    assert record["captureData"]["endpointInput"] == {"observedContentType": "text/csv", "mode": "INPUT",
                                                      "data": base64.b64encode(b"1,2").decode(), "encoding": "BASE64"}
    json_record = capture_record(CONFIG, b'{"data": [1]}', "application/json", b"x", "text/csv; charset=utf-8", WHEN, "id")
    assert json_record["captureData"]["endpointInput"]["encoding"] == "JSON"
    assert json_record["captureData"]["endpointOutput"]["encoding"] == "CSV"  # media type, parameters ignored


def test_input_only_capture_has_no_output_half_and_the_inference_id_is_kept():
    record = capture_record({**CONFIG, "CaptureOptions": [{"CaptureMode": "Input"}]}, b"a", "text/csv", b"b",
                            "text/csv", WHEN, "event-1", inference_id="order-42")
    assert set(record["captureData"]) == {"endpointInput"}
    assert record["eventMetadata"] == {"eventId": "event-1", "inferenceTime": "2025-03-04T05:06:07Z",
                                       "inferenceId": "order-42"}
    assert record["eventVersion"] == "0"


def test_files_land_under_endpoint_variant_and_hour_encrypted():
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bucket")
        writer = CaptureWriter(s3, clock=lambda: WHEN)
        for _ in range(2):
            writer.offer({**CONFIG, "KmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/k"}, "car-evaluation",
                         "AllTraffic", b"vhigh,low", "text/csv", b"acc", "text/csv; charset=utf-8")
        [uri] = writer.flush()
        key = uri.split("/", 3)[3]
        assert re.fullmatch(r"capture/car-evaluation/AllTraffic/2025/03/04/05/06-07-890-[0-9a-f-]{36}\.jsonl", key)
        obj = s3.get_object(Bucket="bucket", Key=key)
        assert obj["ServerSideEncryption"] == "aws:kms"
        lines = obj["Body"].read().decode().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0])["captureData"]["endpointOutput"]["data"] == "acc"


def test_a_disabled_config_captures_nothing():
    writer = CaptureWriter(s3=None)
    assert not writer.offer({**CONFIG, "EnableCapture": False}, "e", "v", b"a", "text/csv", b"b", "text/csv")
    assert not writer.offer(None, "e", "v", b"a", "text/csv", b"b", "text/csv")


def test_records_whose_write_failed_are_written_by_the_next_flush():
    """The background flush swallows a failed write and tries again later: the records must still be there."""
    class FlakyS3:
        def __init__(self):
            self.calls, self.bodies = 0, []

        def put_object(self, **request):
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError("S3 unreachable")
            self.bodies.append(request["Body"].decode("utf-8"))

    s3 = FlakyS3()
    writer = CaptureWriter(s3=s3, clock=lambda: WHEN)
    writer.offer(CONFIG, "e", "AllTraffic", b"1,2", "text/csv", b"acc", "text/csv")
    with pytest.raises(ConnectionError):
        writer.flush()
    writer.offer(CONFIG, "e", "AllTraffic", b"3,4", "text/csv", b"unacc", "text/csv")
    [uri] = writer.flush()
    [body] = s3.bodies
    assert [json.loads(line)["captureData"]["endpointInput"]["data"] for line in body.splitlines()] == ["1,2", "3,4"]
    assert uri.startswith("s3://bucket/capture/e/AllTraffic/2025/03/04/05/")
