"""SparkML Serving 3.3's answers where Spring Boot 2.7 and Jetty 9.4, not the app's own code,
shape them: the Content-Type of the controller's 400s, the error page for requests refused
before the controller, the text encoding, and a record that a StringIndexer drops. Small
hand-written bundles, no Spark.

Every expectation here was read off the real app (aws/sagemaker-sparkml-serving-container at
the commit that pins mleap-runtime 0.20.0, built from source and run against this project's
bundles); the source lines are cited next to each test."""
from __future__ import annotations

import json
import time

import pytest

from localmode.serving.containers import SparkMLServingContainer
from localmode.serving.spring_http import error_page, string_entity_content_type
from test_serving_runtime_units import indexer, write_bundle

SCHEMA = {"input": [{"name": "a", "type": "string"}], "output": {"name": "a_i", "type": "double"}}


@pytest.fixture
def container(tmp_path):
    bundle = write_bundle(tmp_path / "bundle", [indexer("a", ["x", "y"], handle_invalid={"string": "skip"})])
    return SparkMLServingContainer(bundle, {"SAGEMAKER_SPARKML_SCHEMA": json.dumps(SCHEMA)})


# ServingController.java lines 148-150 (and 122-124, 181-184): `ResponseEntity.badRequest()
# .body(ex.getMessage())` names no Content-Type, so Spring negotiates one from Accept and its
# StringHttpMessageConverter (UTF-8 under Spring Boot) adds the charset; Jetty spells the types
# it knows in lower case.
@pytest.mark.parametrize("accept, content_type", [
    (None, "text/plain;charset=utf-8"),
    ("*/*", "text/plain;charset=utf-8"),
    ("text/csv", "text/csv;charset=UTF-8"),
    ("application/jsonlines", "application/jsonlines;charset=UTF-8"),
    ("application/jsonlines;data=text", "application/jsonlines;data=text;charset=UTF-8"),
    ("application/json", "application/json"),
    ("text/html", "text/html;charset=utf-8"),
    ("text/*", "text/plain;charset=utf-8"),
    ("application/*", "application/json"),
    ("text/csv;q=0.1, application/jsonlines;q=0.2", "application/jsonlines;charset=UTF-8"),
    ("*/*;q=0.1, text/csv", "text/csv;charset=UTF-8"),
    ("text/csv;charset=ISO-8859-1", "text/csv;charset=ISO-8859-1"),
    ("foo", None),
])
def test_the_controllers_400_has_the_content_type_spring_negotiates(container, accept, content_type):
    assert string_entity_content_type(accept)[0] == content_type
    # transformRequestJson checks Accept first, then binds one value per schema field.
    response = container.invoke(b'{"data":[]}', "application/json", accept)
    if accept in (None, "*/*", "text/csv", "application/jsonlines", "application/jsonlines;data=text"):
        message = b"Index: 0, Size: 0"
    else:
        message = b"Accept value passed via request or environment variable is not valid"
    assert (response.status, response.content_type) == (400, content_type)
    assert response.body == (message if content_type else b"")  # no Content-Type, no body


# Spring Boot's BasicErrorController answers a request refused before the controller (415, a
# missing body, unreadable JSON). BeanConfiguration.java lines 82-85 declare a plain
# `new ObjectMapper()`, so Spring Boot's Jackson settings do not apply and the timestamp is
# Jackson's default for a Date: epoch milliseconds.
def test_the_error_page_carries_an_epoch_millisecond_timestamp(container):
    before = int(time.time() * 1000)
    response = container.invoke(b"<x/>", "application/xml", None)
    after = int(time.time() * 1000)
    assert (response.status, response.content_type) == (415, "application/json")
    document = json.loads(response.body)
    assert list(document) == ["timestamp", "status", "error", "path"]
    assert isinstance(document["timestamp"], int) and before <= document["timestamp"] <= after
    assert document | {"timestamp": 0} == {"timestamp": 0, "status": 415, "error": "Unsupported Media Type",
                                           "path": "/invocations"}
    assert response.body.startswith(b'{"timestamp":')  # compact, as Jackson writes it
    empty = container.invoke(b"", "text/csv", "application/json")
    assert (empty.status, json.loads(empty.body)["error"]) == (400, "Bad Request")


@pytest.mark.parametrize("accept, kind, content_type", [
    ("*/*", "json", "application/json"),
    ("application/json", "json", "application/json"),
    ("text/html", "html", "text/html;charset=utf-8"),
    ("text/*", "html", "text/html;charset=utf-8"),
    ("application/json, text/html", "html", "text/html;charset=utf-8"),
    ("text/csv", "none", None),
    ("application/jsonlines", "none", None),
])
def test_the_error_page_follows_accept(container, accept, kind, content_type):
    body, negotiated = error_page(415, "Unsupported Media Type", accept, now=1796013275.201)
    assert negotiated == content_type
    if kind == "json":
        assert body == b'{"timestamp":1796013275201,"status":415,"error":"Unsupported Media Type","path":"/invocations"}'
    elif kind == "html":
        assert body == (b"<html><body><h1>Whitelabel Error Page</h1><p>This application has no explicit mapping for "
                        b"/error, so you are seeing this as a fallback.</p><div id='created'>Mon Nov 30 04:34:35 UTC "
                        b"2026</div><div>There was an unexpected error (type=Unsupported Media Type, status=415)."
                        b"</div></body></html>")
    else:
        assert body == b""
    response = container.invoke(b"<x/>", "application/xml", accept)
    assert (response.status, response.content_type) == (415, content_type)


def test_a_record_a_skipping_string_indexer_drops_is_a_400(container):
    # ScalaUtils.getOutputArrayRow (utils/ScalaUtils.java) calls next() on the rows of the
    # transformed frame, which a StringIndexer with handleInvalid=skip left empty.
    assert container.invoke(b"y", "text/csv", None) == (200, b"1.0", "text/csv", None)
    for body, media in ((b"z", "text/csv"), (b'{"data":["z"]}', "application/json"),
                        (b'{"data":["x"]}\n{"data":["z"]}', "application/jsonlines")):
        response = container.invoke(body, media, None)
        assert (response.status, response.body, response.content_type) == (
            400, b"next on empty iterator", "text/plain;charset=utf-8")
        assert "handleInvalid=skip" in response.diagnosis


def test_text_answers_are_utf8(tmp_path):
    # Spring Boot configures StringHttpMessageConverter with UTF-8; the real app answered a
    # string output "vhigé" as the bytes 76 68 69 67 c3 a9 under Content-Type text/csv.
    schema = {"input": [{"name": "a", "type": "string"}], "output": {"name": "a", "type": "string"}}
    container = SparkMLServingContainer(write_bundle(tmp_path, [indexer("a", ["vhigé"])]),
                                        {"SAGEMAKER_SPARKML_SCHEMA": json.dumps(schema)})
    assert container.invoke("vhigé".encode(), "text/csv", None) == (200, "vhigé".encode(), "text/csv", None)
    lines = container.invoke('{"data":["vhigé"]}'.encode(), "application/jsonlines", "application/jsonlines")
    assert lines == (200, "[[vhigé]]".encode(), "application/jsonlines", None)
