"""A local sagemaker-runtime: InvokeEndpoint over HTTP, answered by the endpoint's
real model containers (emulated in-process, see containers.py).

boto3 reaches it through its standard endpoint setting,
`AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=http://127.0.0.1:<port>`, and sees what it
would see from AWS: `POST /endpoints/<EndpointName>/invocations` answers with the
body, the container's Content-Type and `x-Amzn-Invoked-Production-Variant`;
errors come in the rest-json shape botocore turns into `ValidationError` (unknown
endpoint) and `ModelError` (424, with OriginalStatusCode/OriginalMessage) exceptions,
as declared in botocore's sagemaker-runtime service-2.json.

Which model serves an endpoint is the resolver's business: `MotoEndpointResolver`
follows DescribeEndpoint -> DescribeEndpointConfig -> DescribeModel on a (moto)
SageMaker client and loads each container's model.tar.gz from (moto) S3.
An endpoint config with a DataCaptureConfig has its successful invocations
sampled and written to S3 in SageMaker's capture format (capture.py).
"""
from __future__ import annotations

import io
import json
import logging
import re
import shutil
import tarfile
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from localmode.serving.capture import CaptureWriter
from localmode.serving.containers import ContainerConfigError, InferencePipeline, pipeline_from_definitions

log = logging.getLogger(__name__)

DEFAULT_ACCOUNT = "123456789012"
_INVOCATIONS_PATH = re.compile(r"^/endpoints/([^/]+)/invocations$")
_SERVING_STATUSES = ("InService", "Updating", "SystemUpdating", "RollingBack")


class EndpointNotFound(Exception):
    """The endpoint does not exist or cannot take requests: botocore's ValidationError."""


@dataclass(frozen=True)
class ResolvedEndpoint:
    name: str
    variant_name: str
    pipeline: InferencePipeline
    region: str = "us-east-1"
    account: str = DEFAULT_ACCOUNT
    capture: dict | None = None  # the endpoint config's DataCaptureConfig


class EndpointResolver(Protocol):
    def resolve(self, endpoint_name: str) -> ResolvedEndpoint:
        """The endpoint's current pipeline; raises EndpointNotFound."""


def _split_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise ContainerConfigError(f"ModelDataUrl {uri!r} is not an s3://bucket/key URI")
    return parsed.netloc, parsed.path.lstrip("/")


def _extract_model(archive: bytes, target: Path, uri: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(target, filter="data")
            else:  # Python without extraction filters: refuse anything outside the target
                for member in tar.getmembers():
                    resolved = (target / member.name).resolve()
                    if not str(resolved).startswith(str(target.resolve())) or member.issym() or member.islnk():
                        raise ContainerConfigError(f"{uri}: unsafe member {member.name!r}")
                tar.extractall(target)
    except tarfile.TarError as exc:
        raise ContainerConfigError(f"{uri} is not a readable model.tar.gz: {exc}") from None


class MotoEndpointResolver:
    """Endpoint -> pipeline through the SageMaker control plane and S3 (moto locally).

    Pipelines are cached per endpoint config, so an endpoint switched to another config
    serves the new model and a deleted endpoint stops answering. Looking the endpoint up
    costs a few milliseconds on moto, so the endpoint -> config answer is reused for
    `freshness_seconds` (like SageMaker, a change takes effect shortly after it is made);
    0 looks it up on every request.
    """

    def __init__(self, sagemaker_client, s3_client, cache_dir: str | Path | None = None,
                 freshness_seconds: float = 0.2, engine: str = "auto"):
        self.sagemaker = sagemaker_client
        self.s3 = s3_client
        self.freshness_seconds = freshness_seconds
        self.engine = engine
        self._own_cache_dir = cache_dir is None
        self.cache_dir = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="localmode-serving-"))
        self._region = getattr(getattr(sagemaker_client, "meta", None), "region_name", None) or "us-east-1"
        self._lock = threading.Lock()
        self._config_locks: dict[str, threading.Lock] = {}
        self._by_config: dict[str, tuple[str, InferencePipeline, dict | None]] = {}
        self._endpoint_config: dict[str, tuple[float, str, str]] = {}  # name -> (checked at, config, account)

    def invalidate(self, endpoint_name: str | None = None) -> None:
        """Forget what is known about an endpoint (or all), so the next request looks it up again."""
        with self._lock:
            if endpoint_name is None:
                self._endpoint_config.clear()
            else:
                self._endpoint_config.pop(endpoint_name, None)

    def resolve(self, endpoint_name: str) -> ResolvedEndpoint:
        now = time.monotonic()
        known = self._endpoint_config.get(endpoint_name)
        if known is None or now - known[0] >= self.freshness_seconds:
            config_name, account = self._describe_endpoint(endpoint_name)
            known = (now, config_name, account)
            with self._lock:
                self._endpoint_config[endpoint_name] = known
        _, config_name, account = known
        variant_name, pipeline, capture = self._pipeline(config_name)
        return ResolvedEndpoint(endpoint_name, variant_name, pipeline, self._region, account, capture)

    def _describe_endpoint(self, endpoint_name: str) -> tuple[str, str]:
        from botocore.exceptions import ClientError

        try:
            endpoint = self.sagemaker.describe_endpoint(EndpointName=endpoint_name)
        except ClientError as exc:
            with self._lock:
                self._endpoint_config.pop(endpoint_name, None)
            raise EndpointNotFound(f"Endpoint {endpoint_name} of account {DEFAULT_ACCOUNT} not found.") from exc
        account = endpoint.get("EndpointArn", "").split(":")[4] if endpoint.get("EndpointArn", "").count(":") >= 5 \
            else DEFAULT_ACCOUNT
        status = endpoint.get("EndpointStatus")
        if status not in _SERVING_STATUSES:
            raise EndpointNotFound(f"Endpoint {endpoint_name} of account {account} is {status}, not InService.")
        return endpoint["EndpointConfigName"], account

    def _pipeline(self, config_name: str) -> tuple[str, InferencePipeline, dict | None]:
        cached = self._by_config.get(config_name)
        if cached is not None:
            return cached
        with self._lock:
            config_lock = self._config_locks.setdefault(config_name, threading.Lock())
        with config_lock:  # one download/load per config, however many requests arrive at once
            cached = self._by_config.get(config_name)
            if cached is None:
                cached = self._load(config_name)
                self._by_config[config_name] = cached
            return cached

    def _load(self, config_name: str) -> tuple[str, InferencePipeline, dict | None]:
        config = self.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        variants = config.get("ProductionVariants") or []
        if not variants:
            raise ContainerConfigError(f"endpoint config {config_name} has no production variant")
        variant = variants[0]
        model = self.sagemaker.describe_model(ModelName=variant["ModelName"])
        if (model.get("InferenceExecutionConfig") or {}).get("Mode") == "Direct":
            raise ContainerConfigError(f"model {variant['ModelName']}: direct invocation is not emulated locally")
        definitions = model.get("Containers") or ([model["PrimaryContainer"]] if model.get("PrimaryContainer") else [])
        if not definitions:
            raise ContainerConfigError(f"model {variant['ModelName']} has no containers")
        model_dirs = []
        for index, definition in enumerate(definitions):
            uri = definition.get("ModelDataUrl")
            if not uri:
                raise ContainerConfigError(f"model {variant['ModelName']} container {index + 1} has no ModelDataUrl")
            bucket, key = _split_s3_uri(uri)
            archive = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            model_dir = self.cache_dir / config_name / f"container-{index + 1}"
            if model_dir.exists():
                shutil.rmtree(model_dir)
            _extract_model(archive, model_dir, uri)
            model_dirs.append(model_dir)
        pipeline = pipeline_from_definitions(definitions, model_dirs, self.engine)
        log.info("endpoint config %s: model %s with %s", config_name, variant["ModelName"],
                 " -> ".join(c.kind for c in pipeline.containers))
        return variant["VariantName"], pipeline, config.get("DataCaptureConfig") or None

    def close(self) -> None:
        if self._own_cache_dir:
            shutil.rmtree(self.cache_dir, ignore_errors=True)


# --- HTTP ----------------------------------------------------------------------------------

def _header_safe(text: str, limit: int = 1000) -> str:
    return re.sub(r"[^\x20-\x7e]", " ", text)[:limit]


class _InvocationsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: boto3 reuses its connections
    disable_nagle_algorithm = True  # small responses must not wait for delayed ACKs
    server_version = "LocalSageMakerRuntime"
    sys_version = ""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - BaseHTTPRequestHandler's signature
        log.debug("%s %s", self.address_string(), format % args)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        match = _INVOCATIONS_PATH.match(urlparse(self.path).path)
        if match is None:
            self._error(404, "UnknownOperationException", f"No operation at {self.path}")
            return
        try:
            self.server.handle_invocation(self, unquote(match.group(1)), body)
        except Exception as exc:  # a bug here must still answer, or boto3 retries a dropped connection
            log.exception("InvokeEndpoint failed")
            self._error(500, "InternalFailure", f"local inference server: {type(exc).__name__}: {exc}")

    def do_GET(self) -> None:  # noqa: N802
        self._error(404, "UnknownOperationException", f"No operation at GET {self.path}")

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, error_type: str, message: str, extra: dict | None = None,
               headers: dict[str, str] | None = None) -> None:
        code = _ERROR_CODES.get(error_type, error_type)
        if error_type == "ModelError":
            code = "CLIENT_ERROR_FROM_MODEL" if 400 <= (extra or {}).get("OriginalStatusCode", 500) < 500 \
                else "SERVER_ERROR_FROM_MODEL"
        document = {"ErrorCode": code, "Message": message}
        document.update(extra or {})
        all_headers = {"Content-Type": "application/json", "x-amzn-ErrorType": f"{error_type}:"}
        all_headers.update(headers or {})
        self._send(status, json.dumps(document).encode(), all_headers)


# The body's ErrorCode is informational; botocore takes the error's name from x-amzn-ErrorType.
_ERROR_CODES = {"ValidationError": "VALIDATION_ERROR", "InternalFailure": "INTERNAL_FAILURE"}


class LocalInferenceServer(ThreadingHTTPServer):
    """ThreadingHTTPServer answering InvokeEndpoint for whatever `resolver` knows."""

    daemon_threads = True

    def __init__(self, resolver: EndpointResolver, host: str = "127.0.0.1", port: int = 0,
                 capture: CaptureWriter | None = None):
        super().__init__((host, port), _InvocationsHandler)
        self.resolver = resolver
        self.capture = capture
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def handle_invocation(self, handler: _InvocationsHandler, endpoint_name: str, body: bytes) -> None:
        try:
            endpoint = self.resolver.resolve(endpoint_name)
        except EndpointNotFound as exc:
            handler._error(400, "ValidationError", str(exc))
            return
        except Exception as exc:  # a model that cannot load (ContainerConfigError, BundleError...) cannot serve
            log.exception("endpoint %s cannot be served", endpoint_name)
            handler._error(400, "ValidationError", f"Endpoint {endpoint_name} cannot be served locally: {exc}")
            return
        headers = handler.headers
        result = endpoint.pipeline.invoke(body, headers.get("Content-Type"), headers.get("Accept"))
        if result.failure is not None:
            failure = result.failure
            original = failure.response.body.decode("utf-8", errors="replace")
            extra_headers = {}
            if failure.response.diagnosis:
                extra_headers["x-local-diagnosis"] = _header_safe(failure.response.diagnosis)
                log.warning("endpoint %s: %s answered %d (%s)", endpoint_name, failure.hostname,
                            failure.response.status, failure.response.diagnosis)
            message, extra = _model_error(endpoint, failure.hostname, failure.response.status, original)
            handler._error(424, "ModelError", message, extra, extra_headers)
            return
        response = result.response
        content_type = response.content_type or "application/octet-stream"
        # Captured before the answer leaves: a caller that reads the capture files right after its
        # answer (a flush) then finds its own request there.
        if self.capture is not None and endpoint.capture:
            self.capture.offer(endpoint.capture, endpoint.name, endpoint.variant_name, body, headers.get("Content-Type"),
                               response.body, content_type, headers.get("X-Amzn-SageMaker-Inference-Id"))
        handler._send(200, response.body, {
            "Content-Type": content_type,
            "x-Amzn-Invoked-Production-Variant": endpoint.variant_name,
        })

    def start(self) -> "LocalInferenceServer":
        self._thread = threading.Thread(target=self.serve_forever, name="local-sagemaker-runtime", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop serving, close the socket and release the resolver's files (idempotent)."""
        if self._thread is not None:
            super().shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server_close()
        if self.capture is not None:
            self.capture.close()
        close = getattr(self.resolver, "close", None)
        if close is not None:
            close()

    stop = shutdown


def _model_error(endpoint: ResolvedEndpoint, hostname: str, status: int, original: str) -> tuple[str, dict]:
    """ModelError's fields, worded as SageMaker words them."""
    kind = "client" if 400 <= status < 500 else "server"
    group = f"/aws/sagemaker/Endpoints/{endpoint.name}"
    message = (
        f'Received {kind} error ({status}) from {hostname} with message "{original}". '
        f"See https://{endpoint.region}.console.aws.amazon.com/cloudwatch/home?region={endpoint.region}"
        f"#logEventViewer:group={group} in account {endpoint.account} for more information."
    )
    return message, {
        "OriginalStatusCode": status,
        "OriginalMessage": original,
        "LogStreamArn": f"arn:aws:logs:{endpoint.region}:{endpoint.account}:log-group:{group}",
    }


def start_inference_server(region: str, host: str = "127.0.0.1", port: int = 0,
                           freshness_seconds: float = 0.2, engine: str = "auto", s3=None) -> LocalInferenceServer:
    """The local sagemaker-runtime for local mode: SageMaker and S3 are whatever boto3 reaches
    in `region` (moto in local mode). `s3`: the client that reads model data and writes captured
    data, as the endpoint's execution role does on AWS (default: a new one).
    Returns the running server (`.url`, `.shutdown()`)."""
    import boto3

    s3 = s3 or boto3.client("s3", region_name=region)
    resolver = MotoEndpointResolver(boto3.client("sagemaker", region_name=region), s3,
                                    freshness_seconds=freshness_seconds, engine=engine)
    server, _ = start_server(resolver, host, port, capture=CaptureWriter(s3).start())
    return server


def start_server(resolver: EndpointResolver, host: str = "127.0.0.1", port: int = 0,
                 capture: CaptureWriter | None = None) -> tuple[LocalInferenceServer, str]:
    """Serve InvokeEndpoint in a background thread; returns (server, url). Stop with `server.stop()`."""
    server = LocalInferenceServer(resolver, host, port, capture).start()
    return server, server.url
