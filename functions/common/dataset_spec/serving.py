"""What SageMaker SparkML Serving is given: the containers' schema documents, the names inside
the preprocess bundle, how a client's request carries its fields, and the column names the Glue
job keeps for itself.

Three widths of table, one rule (serving_inputs), used by the Glue job (the bundle's names),
create_model (the container's environment) and every client of an endpoint (request_body):
- the schema with the users' column names fits SageMaker's 1024 characters: those names, and a
  CSV request (the schema is in the container's SAGEMAKER_SPARKML_SCHEMA);
- it fits only with short names: the bundle and the schema name the features c1..cN, and requests
  are still CSV. SparkML Serving reads a CSV record by position (DataConversionHelper.
  convertCsvToObjectList: field i is schema input i), so a client never sees those names;
- it does not fit at all (about 30 features and more): short names, no schema in the environment,
  and each request is `application/json`, `{"schema": <the schema>, "data": [<fields>]}`, which
  ServingController.transformRequestJson takes in place of the environment's
  (retrieveAndVerifySchema). A CSV request to such an endpoint gets the container's 400 "Input
  schema has to be provided either via environment variable or via the request".
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

# SageMaker caps each container environment value at 1024 characters (botocore's SageMaker model:
# EnvironmentValue, max 1024), and SparkML Serving reads a CSV request's schema only from the
# SAGEMAKER_SPARKML_SCHEMA variable.
MAX_ENVIRONMENT_VALUE = 1024

CSV_REQUEST = "text/csv"
JSON_REQUEST = "application/json"

# Columns of the serving pipelines and of the job's own frames; a spec's column may not take these names.
FEATURES_COL = "features"
POSTPROCESS_INPUT = "label"
POSTPROCESS_OUTPUT = "predicted_label"
LABEL_INDEX_COL = "label_index"
RESERVED_COLUMNS = {FEATURES_COL, POSTPROCESS_INPUT, POSTPROCESS_OUTPUT, LABEL_INDEX_COL}


def preprocess_schema(feature_names: list[str]) -> dict:
    """The preprocess container's SAGEMAKER_SPARKML_SCHEMA document (every feature a string field:
    see preprocessing.bundle.sparkml_schemas)."""
    return {
        "input": [{"name": name, "type": "string"} for name in feature_names],
        "output": {"name": FEATURES_COL, "type": "double", "struct": "vector"},
    }


def environment_value(schema: dict) -> str:
    """The schema as create_model puts it in the container environment (compact JSON)."""
    return json.dumps(schema, separators=(",", ":"))


def environment_value_length(schema: dict) -> int:
    return len(environment_value(schema))


def schema_in_environment(schema: dict) -> bool:
    """Whether the schema fits a container environment value, so that CSV requests work."""
    return environment_value_length(schema) <= MAX_ENVIRONMENT_VALUE


def short_names(count: int) -> list[str]:
    """The bundle's own feature names when the users' do not fit: c1..cN in feature order. Every
    feature is renamed, so a user's column called "c2" cannot clash with another's new name."""
    return [f"c{i}" for i in range(1, count + 1)]


@dataclass(frozen=True)
class ServingInputs:
    """The preprocess bundle's input columns (feature order) and the Content-Type of a request."""

    names: tuple
    content_type: str


def serving_inputs(feature_names: list[str]) -> ServingInputs:
    """The users' names while their schema fits the environment, else c1..cN; CSV requests while
    a schema fits, else JSON requests that carry it."""
    if schema_in_environment(preprocess_schema(list(feature_names))):
        return ServingInputs(tuple(feature_names), CSV_REQUEST)
    names = short_names(len(feature_names))
    fits = schema_in_environment(preprocess_schema(names))
    return ServingInputs(tuple(names), CSV_REQUEST if fits else JSON_REQUEST)


def csv_record(fields: list[str]) -> bytes:
    """One CSV record without its line end. csv quotes a field holding a character of the line
    terminator, so it is written with CRLF (quoting any field with a line break, which the
    container's CSV parser would otherwise read as the end of the record) and the CRLF cut off."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(fields)
    return buffer.getvalue().removesuffix("\r\n").encode("utf-8")


def request_body(fields: list[str], schema: dict) -> tuple[str, bytes]:
    """(Content-Type, body) of one prediction request: the feature fields, in feature order, as
    the endpoint whose preprocess container has `schema` takes them."""
    if schema_in_environment(schema):
        return CSV_REQUEST, csv_record(fields)
    return JSON_REQUEST, json.dumps({"schema": schema, "data": list(fields)}, separators=(",", ":")).encode("utf-8")
