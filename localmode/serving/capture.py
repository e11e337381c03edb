"""Data capture as a SageMaker endpoint does it, for the local inference server.

An endpoint config's DataCaptureConfig makes SageMaker store a sample of the
requests and responses in S3, as JSON Lines under
`<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl`, one
record per captured invocation (AWS's "Capture data from real-time
endpoint" page, https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-endpoint.html):

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "...", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT",
                                        "data": "...", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceTime": "2022-02-14T17:25:49Z"},
     "eventVersion": "0"}

- `InitialSamplingPercentage` is "the percentage of requests SageMaker will
  capture" (API_DataCaptureConfig): each request is captured with that
  probability.
- Encoding: a body whose media type `CaptureContentTypeHeader` lists under
  CsvContentTypes is stored as text with encoding CSV, under
  JsonContentTypes as text with encoding JSON; anything else, and every body
  when no header is configured, as BASE64 ("If no headers are specified
  SageMaker will by default base64 encode").
- `CaptureOptions` Input and/or Output decide which half is written.
- An `X-Amzn-SageMaker-Inference-Id` request header becomes
  `eventMetadata.inferenceId`.
- SageMaker delivers files every few minutes; here a background thread
  writes what was captured every `flush_seconds` (one file per endpoint,
  variant and hour), with SSE-KMS when the config names a key.
  File names follow what AWS's examples show (`mm-ss-mmm-<uuid>.jsonl`).
"""
from __future__ import annotations

import base64
import datetime
import json
import random
import threading
import uuid
from typing import Any, Callable

CAPTURE_EVENT_VERSION = "0"


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def encode_body(body: bytes, content_type: str | None, header: dict | None) -> tuple[str, str]:
    """(data, encoding) of one body, by CaptureContentTypeHeader."""
    media = _media_type(content_type)
    header = header or {}
    if media and media in {_media_type(t) for t in header.get("CsvContentTypes") or []}:
        return body.decode("utf-8", errors="replace"), "CSV"
    if media and media in {_media_type(t) for t in header.get("JsonContentTypes") or []}:
        return body.decode("utf-8", errors="replace"), "JSON"
    return base64.b64encode(body).decode("ascii"), "BASE64"


def capture_record(config: dict, request: bytes, request_type: str | None, response: bytes, response_type: str | None,
                   when: datetime.datetime, event_id: str, inference_id: str | None = None) -> dict:
    modes = {option.get("CaptureMode") for option in config.get("CaptureOptions") or []}
    header = config.get("CaptureContentTypeHeader")
    data: dict[str, Any] = {}
    if modes & {"Input", "InputAndOutput"}:
        text, encoding = encode_body(request, request_type, header)
        data["endpointInput"] = {"observedContentType": request_type or "", "mode": "INPUT", "data": text,
                                 "encoding": encoding}
    if modes & {"Output", "InputAndOutput"}:
        text, encoding = encode_body(response, response_type, header)
        data["endpointOutput"] = {"observedContentType": response_type or "", "mode": "OUTPUT", "data": text,
                                  "encoding": encoding}
    metadata = {"eventId": event_id, "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if inference_id:
        metadata["inferenceId"] = inference_id
    return {"captureData": data, "eventMetadata": metadata, "eventVersion": CAPTURE_EVENT_VERSION}


def capture_key(prefix: str, endpoint: str, variant: str, when: datetime.datetime) -> str:
    folder = "/".join(part for part in (prefix.strip("/"), endpoint, variant) if part)
    return (f"{folder}/{when:%Y/%m/%d/%H}/{when:%M-%S}-{when.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl")


def _split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"DestinationS3Uri {uri!r} is not an s3:// URI")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix


class CaptureWriter:
    """Samples invocations of endpoints whose config captures data and writes them to S3."""

    def __init__(self, s3, flush_seconds: float = 0.5, rng: random.Random | None = None,
                 clock: Callable[[], datetime.datetime] | None = None):
        self.s3 = s3
        self.flush_seconds = flush_seconds
        self.rng = rng or random.Random()
        self.clock = clock or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self.offered = 0
        self.captured = 0
        self.written: list[str] = []  # s3:// URIs of the files written
        self._pending: dict[tuple, list[str]] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "CaptureWriter":
        self._thread = threading.Thread(target=self._run, name="local-data-capture", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except Exception:  # a failed write is retried at the next flush; capture never fails a request
                pass

    def offer(self, config: dict | None, endpoint: str, variant: str, request: bytes, request_type: str | None,
              response: bytes, response_type: str | None, inference_id: str | None = None) -> bool:
        """Capture one successful invocation with the config's probability. True when captured."""
        if not config or config.get("EnableCapture") is False:
            return False
        with self._lock:
            self.offered += 1
            if self.rng.random() * 100 >= float(config.get("InitialSamplingPercentage", 0)):
                return False
            self.captured += 1
        when = self.clock()
        record = capture_record(config, request, request_type, response, response_type, when, str(uuid.uuid4()),
                                inference_id)
        key = (config["DestinationS3Uri"], config.get("KmsKeyId") or "", endpoint, variant, when.strftime("%Y%m%d%H"))
        with self._lock:
            self._pending.setdefault(key, []).append(json.dumps(record, separators=(",", ":")))
        return True

    def flush(self) -> list[str]:
        """Write what was captured so far; returns the URIs written."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            written = []
            for (destination, kms_key, endpoint, variant, hour), lines in pending.items():
                bucket, prefix = _split_s3(destination)
                when = datetime.datetime.strptime(hour, "%Y%m%d%H").replace(tzinfo=datetime.timezone.utc)
                now = self.clock()
                when = when.replace(minute=now.minute, second=now.second, microsecond=now.microsecond) \
                    if now.strftime("%Y%m%d%H") == hour else when
                key = capture_key(prefix, endpoint, variant, when)
                extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key} if kms_key else {}
                try:
                    self.s3.put_object(Bucket=bucket, Key=key, Body=("\n".join(lines) + "\n").encode("utf-8"),
                                       ContentType="application/jsonlines", **extra)
                except Exception:
                    # Back in the queue, ahead of what came since: the next flush writes them.
                    with self._lock:
                        group = (destination, kms_key, endpoint, variant, hour)
                        self._pending[group] = lines + self._pending.get(group, [])
                    raise
                written.append(f"s3://{bucket}/{key}")
            self.written.extend(written)
            return written

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            self.flush()
        except Exception:
            pass
