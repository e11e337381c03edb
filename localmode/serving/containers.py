"""Local stand-ins for the two model containers of the inference pipeline and for
SageMaker's chaining of them.

Each container is built from a model directory (what model.tar.gz extracts to)
and the container's Environment (exactly CreateModel's Containers[i].Environment),
and answers `invoke(body, content_type, accept)` with the status, body and
Content-Type the real container would send:

- `SparkMLServingContainer`: sagemaker-sparkml-serving-container 3.3 (MLeap runtime
  0.20.0 on Java 8), read from aws/sagemaker-sparkml-serving-container:
  src/main/java/com/amazonaws/sagemaker/controller/ServingController.java,
  helper/DataConversionHelper.java, helper/ResponseHelper.java, utils/ScalaUtils.java.
- `XGBoostContainer`: the built-in XGBoost 1.7-1 algorithm's server, read from
  aws/sagemaker-xgboost-container: src/sagemaker_xgboost_container/algorithm_mode/serve.py,
  serve_utils.py, data_utils.py, encoder.py.
- `InferencePipeline`: SageMaker's serial inference pipeline.

Where the real container's answer is cryptic (a bare array index for a CSV row with
too few fields), the body stays what the container sends and `diagnosis` says in
plain words what went wrong; the local server puts it in a response header and the log.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, NamedTuple, Protocol

from localmode.serving import spring_http
from localmode.serving.javacompat import (
    DOUBLE_TEXT,
    JavaNumberFormatException,
    java_double_str,
    java_object_str,
    parse_java_double,
    parse_java_float,
    parse_java_integer,
)
from localmode.serving.mleap import (
    BASIC_TYPES,
    VECTOR,
    MleapBundle,
    MleapError,
    RowSkipped,
    SparseVector,
)

log = logging.getLogger(__name__)

TEXT_CSV = "text/csv"
APPLICATION_JSON = "application/json"
APPLICATION_JSONLINES = "application/jsonlines"
APPLICATION_JSONLINES_TEXT = "application/jsonlines;data=text"


class ContainerConfigError(Exception):
    """The model directory or environment cannot make a working container."""


class ContainerResponse(NamedTuple):
    status: int
    body: bytes
    content_type: str | None
    # Local-only: a plain explanation when the real container's own message is cryptic.
    diagnosis: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Container(Protocol):
    kind: str

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> ContainerResponse: ...


def media_type(header: str | None) -> str | None:
    """'Text/CSV; charset=utf-8' -> 'text/csv'."""
    if header is None:
        return None
    return header.split(";", 1)[0].strip().lower() or None


# --- SparkML Serving ----------------------------------------------------------------

class _BadRequest(Exception):
    """ServingController's catch-all: 400 with the exception's message as the body."""

    def __init__(self, message: str | None, diagnosis: str | None = None):
        super().__init__(message)
        self.message = message
        self.diagnosis = diagnosis


def _spring_error(status: int, reason: str, accept: str | None, diagnosis: str | None = None) -> ContainerResponse:
    """Spring Boot 2.7's error page, sent when a request never reaches the controller (spring_http)."""
    body, content_type = spring_http.error_page(status, reason, accept)
    return ContainerResponse(status, body, content_type, diagnosis)


def _bad_request(exc: "_BadRequest", accept: str | None) -> ContainerResponse:
    """`ResponseEntity.badRequest().body(ex.getMessage())`: Spring negotiates its Content-Type from
    the Accept header (spring_http); a null message is a 400 without body or Content-Type."""
    if exc.message is None:
        return ContainerResponse(400, b"", None, exc.diagnosis)
    content_type, charset = spring_http.string_entity_content_type(accept)
    if content_type is None:
        return ContainerResponse(400, b"", None, exc.diagnosis)
    return ContainerResponse(400, exc.message.encode(charset, errors="replace"), content_type, exc.diagnosis)


@dataclass(frozen=True)
class ColumnSchema:
    name: str
    type: str
    struct: str = "basic"


@dataclass(frozen=True)
class DataSchema:
    """SAGEMAKER_SPARKML_SCHEMA: {"input": [{name, type, struct?}], "output": {name, type, struct?}}."""

    input: tuple[ColumnSchema, ...]
    output: ColumnSchema

    @classmethod
    def from_json(cls, document) -> "DataSchema":
        """Jackson's strict binding of DataSchema/ColumnSchema (unknown fields and nulls are errors)."""
        if not isinstance(document, dict):
            raise _BadRequest("Cannot deserialize value of type `com.amazonaws.sagemaker.dto.DataSchema`")
        _reject_unknown(document, ("input", "output"), "DataSchema")
        if document.get("input") is None or document.get("output") is None:
            raise _BadRequest("Cannot construct instance of `com.amazonaws.sagemaker.dto.DataSchema`, problem: null")
        if not isinstance(document["input"], list):
            raise _BadRequest("Cannot deserialize value of type `java.util.ArrayList<ColumnSchema>`")
        return cls(tuple(_column(c) for c in document["input"]), _column(document["output"]))


def _reject_unknown(document: dict, known: tuple[str, ...], cls: str) -> None:
    for key in document:
        if key not in known:
            raise _BadRequest(
                f'Unrecognized field "{key}" (class com.amazonaws.sagemaker.dto.{cls}), not marked as ignorable '
                f"({len(known)} known properties: {', '.join(repr(k).replace(chr(39), chr(34)) for k in known)})"
            )


def _column(document) -> ColumnSchema:
    if not isinstance(document, dict):
        raise _BadRequest("Cannot deserialize value of type `com.amazonaws.sagemaker.dto.ColumnSchema`")
    _reject_unknown(document, ("name", "type", "struct"), "ColumnSchema")
    if document.get("name") is None or document.get("type") is None:
        raise _BadRequest("Cannot construct instance of `com.amazonaws.sagemaker.dto.ColumnSchema`, problem: null")
    return ColumnSchema(str(document["name"]), str(document["type"]), str(document.get("struct") or "basic"))


def _java_to_string(value) -> str:
    """`Object.toString()` of what Jackson binds JSON values to."""
    if isinstance(value, list):
        return "[" + ", ".join(_java_to_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_java_to_string(v)}" for k, v in value.items()) + "}"
    return java_object_str(value)


def _basic_converter(type_name: str):
    """DataConversionHelper.convertInputDataToJavaType for struct basic: value.toString() parsed by type."""
    if type_name == "string":
        return None
    if type_name == "double":
        return parse_java_double
    if type_name == "float":
        return parse_java_float
    if type_name in ("int", "long", "short", "byte"):
        return lambda text: parse_java_integer(text, type_name)
    if type_name == "boolean":
        return lambda text: text.lower() == "true"
    return None


_JAVA_CLASS = {
    "double": "java.lang.Double", "float": "java.lang.Float", "int": "java.lang.Integer",
    "long": "java.lang.Long", "short": "java.lang.Short", "byte": "java.lang.Byte",
    "boolean": "java.lang.Boolean", "string": "java.lang.String", VECTOR: "ml.combust.mleap.tensor.DenseTensor",
}


class _SchemaPlan:
    """A schema compiled against the bundle: converters, the MLeap program, the output formatter."""

    def __init__(self, schema: DataSchema, bundle: MleapBundle):
        self.schema = schema
        self.names = tuple(c.name for c in schema.input)
        self.width = len(self.names)
        self.types = tuple(c.type for c in schema.input)
        self.csv_converters = tuple(_basic_converter(t) for t in self.types)
        self.all_strings = all(t == "string" for t in self.types)
        self.unsupported_type = next((t for t in self.types if t not in BASIC_TYPES), None)
        # CSV values are always read as basic values; a vector/array column then fails the
        # second conversion in DataConversionHelper.getRow.
        self.csv_struct_error = any(c.struct not in ("basic", "") for c in schema.input)
        fields = []
        for column in schema.input:
            if column.struct == "vector":
                fields.append((column.name, VECTOR))
            elif column.struct == "array":
                fields.append((column.name, "array"))
            else:
                fields.append((column.name, column.type))
        self.fields = tuple(fields)
        self.output = schema.output
        self.output_struct = schema.output.struct or "basic"
        self.program = None
        self.program_error: str | None = None
        try:
            if any(t == "array" for _, t in fields):
                raise MleapError("array inputs are not supported by the local MLeap runtime")
            self.program = bundle.program(self.fields, schema.output.name)
        except MleapError as exc:
            self.program_error = str(exc)
        self.fast_text = self.program is not None and self.program.output_computed

    def run(self, rows: list[list]) -> tuple[list, int]:
        """Transform every row: (outputs of the rows kept, number of rows skipped)."""
        if self.program_error is not None:
            raise _BadRequest(self.program_error)
        run = self.program.run
        outputs = []
        skipped = 0
        for row in rows:
            try:
                outputs.append(run(row))
            except RowSkipped:
                skipped += 1
            except MleapError as exc:
                raise _BadRequest(str(exc)) from None
        return outputs, skipped

    def vector_text(self, value, separator: str) -> str:
        if value.__class__ is SparseVector:
            value = value.dense
        if self.fast_text:
            return separator.join(map(DOUBLE_TEXT.__getitem__, value))
        return separator.join([java_double_str(v) for v in value])


class SparkMLServingContainer:
    """sagemaker-sparkml-serving 3.3: an MLeap bundle behind /invocations."""

    kind = "sparkml-serving"
    VALID_ACCEPTS = (TEXT_CSV, APPLICATION_JSONLINES, APPLICATION_JSONLINES_TEXT)

    def __init__(self, model_dir: str | os.PathLike, environment: Mapping[str, str] | None = None):
        self.model_dir = Path(model_dir)
        self.environment = dict(environment or {})
        self.bundle = MleapBundle(self.model_dir)
        self.default_accept = self.environment.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT")
        self._plans: dict[DataSchema, _SchemaPlan] = {}
        self._env_plan_cache: _SchemaPlan | None = None
        self._env_schema: DataSchema | None = None
        self._env_schema_error: str | None = None
        raw_schema = self.environment.get("SAGEMAKER_SPARKML_SCHEMA")
        if raw_schema is not None:
            # The container re-reads the variable per request and answers 400 when it is bad;
            # parsing once keeps that answer and lets local mode warn at load.
            try:
                self._env_schema = DataSchema.from_json(json.loads(raw_schema))
            except json.JSONDecodeError as exc:
                self._env_schema_error = f"Unexpected character in SAGEMAKER_SPARKML_SCHEMA: {exc}"
            except _BadRequest as exc:
                self._env_schema_error = exc.message
            if self._env_schema_error:
                log.warning("SAGEMAKER_SPARKML_SCHEMA of %s is invalid: %s", self.model_dir, self._env_schema_error)

    # ServingController.retrieveAndVerifyAccept
    def _accept(self, accept: str | None) -> str:
        if accept is None and self.default_accept is None:
            return TEXT_CSV
        value = self.default_accept if (accept is None or not accept.strip() or accept == "*/*") else accept
        if value and value not in self.VALID_ACCEPTS:
            raise _BadRequest("Accept value passed via request or environment variable is not valid")
        return value or TEXT_CSV

    # ServingController.retrieveAndVerifySchema
    def _schema(self, from_body: DataSchema | None) -> DataSchema:
        if from_body is not None:
            return from_body
        if self._env_schema_error is not None:
            raise _BadRequest(self._env_schema_error)
        if self._env_schema is None:
            raise _BadRequest("Input schema has to be provided either via environment variable or via the request")
        return self._env_schema

    def _plan(self, schema: DataSchema) -> _SchemaPlan:
        plan = self._plans.get(schema)
        if plan is None:
            plan = self._plans[schema] = _SchemaPlan(schema, self.bundle)
        return plan

    def _env_plan(self) -> _SchemaPlan:
        if self._env_plan_cache is None:
            self._env_plan_cache = self._plan(self._schema(None))
        return self._env_plan_cache

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> ContainerResponse:
        media = TEXT_CSV if content_type == TEXT_CSV else media_type(content_type)
        if media not in (TEXT_CSV, APPLICATION_JSON, APPLICATION_JSONLINES):
            return _spring_error(415, "Unsupported Media Type", accept)
        if not body:
            # @RequestBody is required: Spring rejects an empty body before the controller runs.
            return _spring_error(400, "Bad Request", accept)
        try:
            if media == TEXT_CSV:
                return self._invoke_csv(body, accept)
            if media == APPLICATION_JSON:
                return self._invoke_json(body, accept)
            return self._invoke_jsonlines(body, accept)
        except _SpringRejected as exc:
            return _spring_error(400, "Bad Request", accept, exc.diagnosis)
        except _BadRequest as exc:
            return _bad_request(exc, accept)

    # transformRequestCsv: accept, schema, then DataConversionHelper.convertCsvToObjectList, which
    # parses every record (a malformed later record still fails the request) and converts only
    # `parser.getRecords().get(0)` ("We don not supporting multiple CSV lines as input currently").
    def _invoke_csv(self, body: bytes, accept: str | None) -> ContainerResponse:
        accept_value = self._accept(accept)
        plan = self._env_plan()
        records = _parse_csv(body.decode("utf-8", errors="replace"))
        width = plan.width
        if not records:
            # ArrayList.get(0) on no records, Java 8's message.
            raise _BadRequest("Index: 0, Size: 0", "the CSV body holds no record")
        if len(records) > 1:
            log.warning("CSV body with %d records: SparkML Serving transforms only the first (one record "
                        "per request; the others are dropped)", len(records))
        record = records[0]
        if len(record) == width and plan.all_strings:  # the usual request
            return self._response(self._respond_one(plan, record, accept_value, csv_input=True))
        if len(record) < width:
            raise _BadRequest(
                # commons-csv CSVRecord.get(i) on a short record: Java 8's
                # ArrayIndexOutOfBoundsException, whose message is just the index.
                str(len(record)),
                f"the CSV record has {len(record)} field(s) but the schema expects {width} "
                f"({', '.join(plan.names)}); SparkML Serving answers with the bare index of the "
                "first missing field",
            )
        if len(record) > width:
            log.info("CSV record has %d fields; SparkML Serving uses the first %d", len(record), width)
        row = record[:width] if plan.all_strings else _convert_basic(record[:width], plan)
        return self._response(self._respond_one(plan, row, accept_value, csv_input=True))

    # transformRequestJson: Jackson binds {"schema"?, "data"} first (unknown keys and a missing
    # "data" are rejected by Spring), then accept, then schema.
    def _invoke_json(self, body: bytes, accept: str | None) -> ContainerResponse:
        document = _json_or_reject(body)
        if not isinstance(document, dict):
            raise _SpringRejected("the JSON body is not an object with a \"data\" list")
        for key in document:
            if key not in ("schema", "data"):
                raise _SpringRejected(f"unknown field {key!r} in the JSON body (only \"schema\" and \"data\")")
        data = document.get("data")
        if not isinstance(data, list):
            raise _SpringRejected("the JSON body needs \"data\": a list with one value per schema input")
        body_schema = None
        if document.get("schema") is not None:
            try:
                body_schema = DataSchema.from_json(document["schema"])
            except _BadRequest as exc:
                raise _SpringRejected(f"invalid \"schema\" in the body: {exc.message}") from None
        accept_value = self._accept(accept)
        plan = self._plan(self._schema(body_schema))
        return self._response(self._respond_one(plan, self._json_row(plan, data), accept_value, csv_input=False))

    # transformRequestJsonLines -> processInputDataForJsonLines: the first line's "schema" (else
    # the environment's), then every line's records: `{"data": [[...], [...]]}` holds several,
    # `{"data": [...]}` one. Each record is transformed alone, and the answers are joined as Java
    # prints a List<List<String>>: `[[answer1], [answer2]]`, with the first answer's Content-Type.
    def _invoke_jsonlines(self, body: bytes, accept: str | None) -> ContainerResponse:
        accept_value = self._accept(accept)
        lines = re.split(r"\r?\n", body.decode("utf-8", errors="replace"))
        while lines and lines[-1] == "":  # Java's String.split drops trailing empty strings
            lines.pop()
        if not lines:
            raise _BadRequest("0", "the body holds no JSON line")  # lines[0]: Java 8's ArrayIndexOutOfBoundsException
        documents = [_jsonlines_document(line) for line in lines[:1]]
        first_schema = documents[0].get("schema")
        schema = DataSchema.from_json(first_schema) if first_schema is not None else None
        plan = self._plan(self._schema(schema))
        records = []
        for index, line in enumerate(lines):
            document = documents[0] if index == 0 else _jsonlines_document(line)
            data = document["data"]
            if data and all(isinstance(item, list) for item in data):
                records.extend(data)  # bound as SageMakerRequestListObject
            else:
                records.append(data)  # Jackson refused List<List<Object>>: SageMakerRequestObject
        answers = [self._respond_one(plan, self._json_row(plan, record), accept_value, csv_input=False)
                   for record in records]
        if not answers:
            raise _BadRequest("Index: 0, Size: 0", "the JSON lines hold no record")  # responseList.get(0)
        text = "[" + ", ".join("[" + answer_text + "]" for answer_text, _ in answers) + "]"
        return ContainerResponse(200, text.encode("utf-8"), answers[0][1])

    @staticmethod
    def _response(answer: tuple[str, str]) -> ContainerResponse:
        text, content_type = answer
        return ContainerResponse(200, text.encode("utf-8"), content_type)

    @staticmethod
    def _json_row(plan: _SchemaPlan, data: list) -> list:
        values = []
        for index, column in enumerate(plan.schema.input):
            if index >= len(data):
                raise _BadRequest(
                    f"Index: {index}, Size: {len(data)}",  # java.util.ArrayList.get on Java 8
                    f"\"data\" has {len(data)} value(s) but the schema expects {len(plan.names)} "
                    f"({', '.join(plan.names)})",
                )
            values.append(_convert_json_value(column, data[index]))
        return values

    @staticmethod
    def _respond_one(plan: _SchemaPlan, row: list, accept: str, csv_input: bool) -> tuple[str, str]:
        """One record through DataConversionHelper.convertInputToLeapFrame, the MLeap transform,
        ScalaUtils.getOutputArrayRow and ResponseHelper: (body text, Content-Type).

        Spring Boot's StringHttpMessageConverter writes the text as UTF-8 (checked on the real app
        with a non-ASCII string output)."""
        if plan.unsupported_type is not None:
            raise _BadRequest("Data type passed in the request is wrong for one or more columns")
        if csv_input and plan.csv_struct_error:
            raise _BadRequest("Input val is not a list but struct passed is vector or array")
        outputs, _ = plan.run([row])
        if not outputs:
            # ScalaUtils.getOutputArrayRow calls next() on the rows of an empty frame.
            raise _BadRequest("next on empty iterator",
                              "the record was dropped by a StringIndexer with handleInvalid=skip "
                              "(a value it did not see in training)")
        value = outputs[0]
        output_type = plan.program.output_type
        if plan.output_struct == "basic":
            text = _basic_output(value, plan.output.type, output_type)
            return text, (TEXT_CSV if accept == TEXT_CSV else APPLICATION_JSONLINES)
        if plan.output_struct != "vector":
            raise _BadRequest(f"{_JAVA_CLASS.get(output_type, 'java.lang.Object')} cannot be cast to "
                              "scala.collection.Seq")
        if output_type != VECTOR:
            raise _BadRequest(f"{_JAVA_CLASS.get(output_type, 'java.lang.Object')} cannot be cast to "
                              "ml.combust.mleap.tensor.Tensor")
        if accept == TEXT_CSV:
            return plan.vector_text(value, ","), TEXT_CSV
        if accept == APPLICATION_JSONLINES:
            # JsonlinesStandardOutput through Jackson, which writes doubles with Double.toString.
            return '{"features":[' + plan.vector_text(value, ",") + "]}", APPLICATION_JSONLINES
        return json.dumps({"source": plan.vector_text(value, " ")}, separators=(",", ":")), APPLICATION_JSONLINES


class _SpringRejected(Exception):
    """The body failed Jackson binding before the controller: Spring's default 400."""

    def __init__(self, diagnosis: str | None = None):
        super().__init__(diagnosis)
        self.diagnosis = diagnosis


def _json_or_reject(body: bytes):
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _SpringRejected(f"the body is not valid JSON: {exc}") from None


def _jsonlines_document(line: str) -> dict:
    """One JSON line bound as SageMakerRequestObject ({"schema"?, "data"}) by a plain ObjectMapper;
    a failure is the controller's 400 with Jackson's message."""
    if not line.strip():
        raise _BadRequest('No content to map due to end-of-input\n at [Source: (String)"%s"; line: 1, column: %d]'
                          % (line, len(line)), "a JSON line is empty")
    try:
        document = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _BadRequest(f"Unexpected character: {exc}", f"a JSON line is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise _BadRequest("Cannot deserialize value of type `com.amazonaws.sagemaker.dto.SageMakerRequestObject`")
    for key in document:
        if key not in ("schema", "data"):
            raise _BadRequest(f'Unrecognized field "{key}" (class com.amazonaws.sagemaker.dto.SageMakerRequestObject), '
                              'not marked as ignorable (2 known properties: "schema", "data"])')
    if not isinstance(document.get("data"), list):
        raise _BadRequest("Cannot construct instance of `com.amazonaws.sagemaker.dto.SageMakerRequestObject`, "
                          "problem: null", 'a JSON line needs "data": a list')
    if document.get("schema") is not None:
        DataSchema.from_json(document["schema"])  # bound (strictly) on every line, used from the first
    return document


def _convert_basic(record: list[str], plan: _SchemaPlan) -> list:
    values = []
    for text, convert, type_name in zip(record, plan.csv_converters, plan.types):
        if type_name not in BASIC_TYPES:
            raise _BadRequest("Given type is not supported")
        if convert is None:
            values.append(text)
            continue
        try:
            values.append(convert(text))
        except JavaNumberFormatException as exc:
            raise _BadRequest(str(exc)) from None
    return values


def _convert_json_value(column: ColumnSchema, value):
    struct = column.struct or "basic"
    if struct == "basic":
        if value is None:
            # value.toString() on null: a NullPointerException without a message.
            raise _BadRequest(None, f"\"data\" has null for {column.name}")
        if column.type not in BASIC_TYPES:
            raise _BadRequest("Given type is not supported")
        text = _java_to_string(value)
        convert = _basic_converter(column.type)
        try:
            return text if convert is None else convert(text)
        except JavaNumberFormatException as exc:
            raise _BadRequest(str(exc)) from None
    if not isinstance(value, list):
        raise _BadRequest("Input val is not a list but struct passed is vector or array")
    if column.type in ("double", "float"):
        for element in value:
            if not isinstance(element, float):
                java_type = "java.lang.Integer" if isinstance(element, int) else "java.lang.String"
                raise _BadRequest(f"{java_type} cannot be cast to java.lang.Double")
        return [float(v) for v in value]
    return list(value)


def _basic_output(value, declared_type: str, actual_type: str) -> str:
    """DataConversionHelper.convertMLeapBasicTypeToJavaType, then toString()."""
    if declared_type not in BASIC_TYPES:
        raise _BadRequest("Given type is not supported")
    wanted = {"float": "double"}.get(declared_type, declared_type)
    if wanted != actual_type:
        raise _BadRequest(f"{_JAVA_CLASS.get(actual_type, 'java.lang.Object')} cannot be cast to "
                          f"{_JAVA_CLASS.get(wanted, 'java.lang.Object')}")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double_str(value)
    return str(value)


def _parse_csv(text: str) -> list[list[str]]:
    """commons-csv CSVFormat.DEFAULT: ',' separated, '"' quoted, CRLF/LF/CR records, empty lines ignored."""
    if '"' not in text:
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        return [line.split(",") for line in text.split("\n") if line]
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records = []
    while True:
        start_line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return records
        except csv.Error as exc:
            # commons-csv 1.9 Lexer's IOExceptions, which getRecords() passes on unwrapped.
            if "unexpected end of data" in str(exc):
                raise _BadRequest(f"(startline {start_line}) EOF reached before encapsulated token finished",
                                  f"a quoted CSV field is not closed ({exc})") from None
            raise _BadRequest(f"(line {reader.line_num}) invalid char between encapsulated token and delimiter",
                              f"a quoted CSV field is followed by more characters ({exc})") from None
        if row:
            records.append(row)


# --- XGBoost 1.7-1 ----------------------------------------------------------------------

_XGB_VALID_CONTENT_TYPES = ("csv", "libsvm", "parquet", "recordio-protobuf", "text/csv", "text/libsvm",
                            "text/x-libsvm", "application/x-parquet", "application/x-recordio-protobuf")
_XGB_SUPPORTED_ACCEPTS = ("application/json", "application/jsonlines", "application/x-recordio-protobuf", TEXT_CSV)


class XGBoostContainer:
    """The built-in XGBoost 1.7-1 algorithm's inference server (algorithm mode)."""

    kind = "xgboost"

    def __init__(self, model_dir: str | os.PathLike, environment: Mapping[str, str] | None = None,
                 engine: str = "auto"):
        import xgboost

        self.model_dir = Path(model_dir)
        self.environment = dict(environment or {})
        if "SAGEMAKER_INFERENCE_OUTPUT" in self.environment:
            raise ContainerConfigError("selectable inference output (SAGEMAKER_INFERENCE_OUTPUT) is not emulated "
                                       "by the local XGBoost container")
        self.default_accept = self.environment.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or TEXT_CSV
        self.model_file = self._model_file()
        self.booster = xgboost.Booster()
        try:
            self.booster.load_model(str(self.model_file))
        except xgboost.core.XGBoostError as exc:
            raise ContainerConfigError(f"Model at {self.model_dir} cannot be loaded: {exc}") from None
        self.booster.set_param("nthread", 1)  # serve_utils.get_loaded_booster does the same
        self.n_features = self.booster.num_features()
        from localmode.serving.trees import iteration_range

        # serve_utils.predict passes ntree_limit=best_ntree_limit; this is xgboost's own conversion of it.
        self._iteration_range = iteration_range(self.booster)
        self._lock = threading.Lock()  # Booster.predict is not thread-safe
        self.forest = None
        if engine not in ("auto", "compiled", "xgboost"):
            raise ValueError(f"engine must be auto, compiled or xgboost, not {engine!r}")
        if engine != "xgboost":
            from localmode.serving.trees import compile_booster

            self.forest = compile_booster(self.booster)
            if self.forest is None and engine == "compiled":
                raise ContainerConfigError("this model cannot use the compiled tree evaluator")
        self.engine = "compiled" if self.forest is not None else "xgboost"

    def _model_file(self) -> Path:
        preferred = self.model_dir / "xgboost-model"
        if preferred.is_file():
            return preferred
        files = sorted(p for p in self.model_dir.iterdir() if p.is_file()) if self.model_dir.is_dir() else []
        if not files:
            raise ContainerConfigError(f"{self.model_dir} holds no model file (expected xgboost-model)")
        return files[0]

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> ContainerResponse:
        if len(body) == 0:
            return ContainerResponse(204, b"", "text/html; charset=utf-8")
        try:
            kind = "csv" if content_type == TEXT_CSV else _xgb_content_type(content_type)
        except ValueError as exc:
            return ContainerResponse(415, str(exc).encode(), "text/html; charset=utf-8")
        if kind != "csv":
            return ContainerResponse(
                415, f"Content type {content_type} is accepted by SageMaker's XGBoost but not emulated "
                     "locally; send text/csv".encode(), "text/html; charset=utf-8")
        try:
            text = body.strip().decode("utf-8")
        except UnicodeDecodeError as exc:
            return _xgb_csv_refused(exc)
        predictions = self._fast_csv(text)
        if predictions is None:
            import xgboost

            # serve_utils.parse_content_data -> encoder.csv_to_dmatrix builds the DMatrix inside
            # the try that answers 415, so a value xgboost refuses there (inf) is a 415.
            try:
                matrix = _csv_to_matrix(text)
                dmatrix = xgboost.DMatrix(matrix)
            except Exception as exc:
                return _xgb_csv_refused(exc)
            try:
                predictions = self._predict_dmatrix(dmatrix)
            except Exception as exc:
                return ContainerResponse(400, f"Unable to evaluate payload provided: {exc}".encode(),
                                         "text/html; charset=utf-8",
                                         _feature_diagnosis(matrix, self.n_features))
        return self._encode(predictions, accept)

    def _fast_csv(self, text: str) -> list[float] | None:
        """One comma-separated row of numbers, no wider than the model, through the compiled trees.

        float() parses exactly what numpy's astype(float) does; anything else (several rows,
        empty fields, inf, too many columns, another delimiter) takes the container's own path."""
        if self.forest is None or "\n" in text or "," not in text:
            return None
        try:
            row = list(map(float, text.split(",")))
        except ValueError:
            return None
        if len(row) > self.n_features or math.inf in row or -math.inf in row:
            return None
        return [self.forest.predict_row(row)]

    def _predict_dmatrix(self, dmatrix) -> list:
        with self._lock:
            return self.booster.predict(dmatrix, iteration_range=self._iteration_range,
                                        validate_features=False).tolist()

    def _encode(self, predictions: list, accept: str | None) -> ContainerResponse:
        """serve.py invocations() after the prediction: _parse_accept, then the encoding.

        Flask's Response(mimetype=...) adds "; charset=utf-8" to text/* types."""
        requested = (accept or "").split(";", 1)[0].strip()  # cgi.parse_header's key
        if not requested or requested == "*/*":
            chosen = self.default_accept  # SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, not checked
        elif requested.lower() not in _XGB_SUPPORTED_ACCEPTS:
            return ContainerResponse(
                406, f"Accept type {requested} is not supported. Please use supported accept types: "
                     f"{list(_XGB_SUPPORTED_ACCEPTS)}.".encode(), "text/html; charset=utf-8")
        else:
            chosen = requested.lower()
        if chosen == "application/json":
            # serve_utils.encode_predictions_as_json: json.dumps with its default separators.
            document = {"predictions": [{"score": p} for p in predictions]}
            return ContainerResponse(200, json.dumps(document).encode(), "application/json")
        if chosen == TEXT_CSV:
            # sagemaker_containers' encoders.array_to_csv: csv.writer rows of str(value), "\n" after each.
            text = "".join([_py_str(p) + "\n" for p in predictions])
            return ContainerResponse(200, text.encode(), "text/csv; charset=utf-8")
        # encoders.encode knows only npy, csv and json: UnsupportedFormatError escapes the view and
        # Flask answers its generic 500 (application/jsonlines and recordio-protobuf included).
        return ContainerResponse(
            500, _WERKZEUG_500.encode(), "text/html",
            f"the XGBoost container cannot encode its answer as {chosen} (sagemaker_containers' encoders "
            "support text/csv and application/json here): UnsupportedFormatError")


# What Flask 1.1 sends for an exception a view does not catch: Werkzeug 0.15.6's InternalServerError
# (pallets/werkzeug 0.15.6, src/werkzeug/exceptions.py: get_body, get_headers -> "text/html").
# Read from the source, not observed on the container.
_WERKZEUG_500 = ('<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n'
                 "<title>500 Internal Server Error</title>\n"
                 "<h1>Internal Server Error</h1>\n"
                 "<p>The server encountered an internal error and was unable to complete your request. "
                 "Either the server is overloaded or there is an error in the application.</p>\n")


def _xgb_csv_refused(exc: Exception) -> ContainerResponse:
    """serve_utils.parse_content_data's wrapper around any CSV parsing failure, answered 415."""
    return ContainerResponse(
        415, ("Loading csv data failed with Exception, please ensure data is in csv format:\n"
              f" {type(exc)}\n {exc}").encode(), "text/html; charset=utf-8")


def _py_str(value) -> str:
    if isinstance(value, list):
        return ",".join(_py_str(v) for v in value)
    return str(value)


def _xgb_content_type(header: str | None) -> str:
    """data_utils.get_content_type: None means libsvm; 'text/csv; label_size=1' is csv."""
    if header is None:
        return "libsvm"
    lowered = header.lower()
    if lowered in ("libsvm", "text/libsvm", "text/x-libsvm"):
        return "libsvm"
    if "csv" in lowered:
        if lowered in ("csv", TEXT_CSV):
            return "csv"
        base, _, params = lowered.partition(";")
        if base.strip() == TEXT_CSV:
            label_size = dict(p.strip().split("=", 1) for p in params.split(";") if "=" in p).get("label_size")
            if label_size is not None and label_size != "1":
                raise ValueError(f"{lowered} is not an accepted csv ContentType. "
                                 "Optional parameter label_size must be equal to 1")
            return "csv"
    if lowered in ("parquet", "application/x-parquet"):
        return "parquet"
    if lowered in ("recordio-protobuf", "application/x-recordio-protobuf"):
        return "recordio-protobuf"
    raise ValueError(f"{header} is not an accepted ContentType: " + ", ".join(_XGB_VALID_CONTENT_TYPES) + ".")


def _csv_to_matrix(text: str):
    """encoder.csv_to_dmatrix's parsing: sniffed delimiter, '' -> nan, numpy float conversion."""
    import numpy as np

    sniffed = csv.Sniffer().sniff(text.split("\n")[0][:512]).delimiter
    delimiter = "," if sniffed.isalnum() else sniffed
    rows = [["nan" if x == "" else x for x in line.split(delimiter)] for line in text.split("\n")]
    return np.array(rows).astype(float)


def _feature_diagnosis(matrix, n_features: int) -> str | None:
    width = matrix.shape[1] if getattr(matrix, "ndim", 0) == 2 else None
    if width is not None and width > n_features:
        return f"the row has {width} values but the model was trained on {n_features} features"
    return None


# --- the inference pipeline ---------------------------------------------------------------

@dataclass(frozen=True)
class PipelineFailure:
    """A container answered with an error: SageMaker turns it into ModelError (424)."""

    index: int
    hostname: str
    response: ContainerResponse


@dataclass(frozen=True)
class PipelineResult:
    response: ContainerResponse | None
    failure: PipelineFailure | None = None


class ContainerError(Exception):
    def __init__(self, failure: PipelineFailure):
        body = failure.response.body.decode("utf-8", errors="replace")
        super().__init__(f"{failure.hostname} answered {failure.response.status}: {body}"
                         + (f" ({failure.response.diagnosis})" if failure.response.diagnosis else ""))
        self.failure = failure


class InferencePipeline:
    """SageMaker's serial inference pipeline: each container's response is the next one's request.

    The request's Content-Type goes to the first container; each later container gets the
    previous response's body and Content-Type. The caller's Accept goes to the last
    container only, so the others answer in their default format
    (SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, else their own default): the behaviour
    aws/amazon-sagemaker-examples#729 shows, where a preprocessor's JSON reached XGBoost
    although the caller asked for text/csv.
    """

    def __init__(self, containers: list[Container], hostnames: list[str] | None = None):
        if not containers:
            raise ValueError("an inference pipeline needs at least one container")
        self.containers = list(containers)
        self.hostnames = list(hostnames or [])
        for index in range(len(self.hostnames), len(self.containers)):
            self.hostnames.append(f"container-{index + 1}" if len(self.containers) > 1 else "primary")

    def invoke(self, body: bytes, content_type: str | None, accept: str | None = None) -> PipelineResult:
        last = len(self.containers) - 1
        response = None
        for index, container in enumerate(self.containers):
            try:
                response = container.invoke(body, content_type, accept if index == last else None)
            except Exception as exc:  # a crash inside a container is that container's 500
                log.exception("%s (%s) crashed", self.hostnames[index], container.kind)
                response = ContainerResponse(500, f"{type(exc).__name__}: {exc}".encode(), "text/plain")
            if response.status >= 400:
                return PipelineResult(None, PipelineFailure(index, self.hostnames[index], response))
            body, content_type = response.body, response.content_type
        return PipelineResult(response)

    def predict_csv_line(self, line: str, accept: str | None = None) -> str:
        """One CSV record in, the pipeline's answer out (e.g. 'unacc'); ContainerError on failure."""
        result = self.invoke(line.encode("utf-8"), TEXT_CSV, accept)
        if result.failure is not None:
            raise ContainerError(result.failure)
        return result.response.body.decode("utf-8")


def container_for(image: str, model_dir: str | os.PathLike, environment: Mapping[str, str] | None = None,
                  engine: str = "auto") -> Container:
    """The local emulation of a container image, chosen by its URI."""
    if "sparkml-serving" in image:
        return SparkMLServingContainer(model_dir, environment)
    if "xgboost" in image:
        return XGBoostContainer(model_dir, environment, engine=engine)
    raise ContainerConfigError(
        f"image {image!r} has no local emulation (known: SparkML Serving 'sparkml-serving', built-in 'xgboost')"
    )


def pipeline_from_definitions(definitions: list[dict], model_dirs: list, engine: str = "auto") -> InferencePipeline:
    """CreateModel's Containers (Image, Environment, ContainerHostname), each with its extracted model directory."""
    containers, hostnames = [], []
    for index, (definition, model_dir) in enumerate(zip(definitions, model_dirs, strict=True)):
        containers.append(container_for(definition.get("Image", ""), model_dir, definition.get("Environment"), engine))
        hostnames.append(definition.get("ContainerHostname")
                         or (f"container-{index + 1}" if len(definitions) > 1 else "primary"))
    return InferencePipeline(containers, hostnames)
