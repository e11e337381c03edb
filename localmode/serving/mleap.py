"""A small MLeap bundle runtime: loads an unzipped JSON MLeap bundle (bundle.json
+ root/, what model.tar.gz holds) and runs it one row at a time the way MLeap
runtime 0.20.0 (inside SparkML Serving 3.3) does.

Supported ops: pipeline, string_indexer, one_hot_encoder, vector_assembler,
reverse_string_indexer (Spark's IndexToString), imputer, bucketizer, binarizer.
Anything else fails at load with the op's name, never silently.

Semantics and error messages follow mleap-core/mleap-runtime 0.20.0
(StringIndexerModel, OneHotEncoderModel, VectorAssemblerModel,
ReverseStringIndexerModel, ImputerModel, BucketizerModel, BinarizerModel,
HandleInvalid, Casting, the *Op loaders and bundle-ml's JsonSupport). A bundle is compiled once per input schema into a
list of slot operations, so a row costs a few microseconds.
"""
from __future__ import annotations

import bisect
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from localmode.serving.javacompat import (
    JavaNumberFormatException,
    java_double_str,
    java_float_str,
    java_int32,
    parse_java_double,
)

BASIC_TYPES = ("boolean", "byte", "short", "int", "long", "float", "double", "string")
VECTOR = "vector"
SUPPORTED_OPS = ("pipeline", "string_indexer", "one_hot_encoder", "vector_assembler", "reverse_string_indexer",
                 "imputer", "bucketizer", "binarizer", "regex_indexer", "math_binary")


class BundleError(Exception):
    """The bundle cannot be loaded (missing files, unsupported format or op)."""


class MleapError(Exception):
    """A row failed to transform; the message is what MLeap's exception would say."""


class RowSkipped(Exception):
    """A StringIndexer with handleInvalid=skip filtered the row out of the frame."""


class SparseVector:
    """A Spark/MLeap sparse vector: the one-hot encoder's output."""

    __slots__ = ("size", "indices", "values", "dense")

    def __init__(self, size: int, indices: tuple, values: tuple):
        self.size = size
        self.indices = indices
        self.values = values
        dense = [0.0] * size
        for index, value in zip(indices, values):
            # VectorAssemblerModel keeps only non-zero entries: an explicit -0.0 becomes 0.0.
            if value != 0.0:
                dense[index] = value
        self.dense = tuple(dense)

    def to_dense(self) -> list[float]:
        return list(self.dense)


def dense_values(value) -> list[float]:
    """A vector value as a dense list (what SparkML Serving's toDense() iterates)."""
    if isinstance(value, SparseVector):
        return value.to_dense()
    return list(value)


# --- bundle-ml JSON attribute decoding (JsonSupport.scala) -------------------------

def _scalar(attributes: dict, name: str, kind: str, default):
    """A scalar attribute; protobuf-style defaults when absent ({} means false/0/"")."""
    value = attributes.get(name)
    if value is None:
        return None
    if value.get("type") not in (None,):
        raise BundleError(f"attribute {name!r} is a {value.get('type')}, expected a scalar {kind}")
    return value.get(kind, default)


def _list(attributes: dict, name: str, kind: str) -> list | None:
    value = attributes.get(name)
    if value is None:
        return None
    if value.get("type") != "list":
        raise BundleError(f"attribute {name!r} is not a list")
    return list(value.get(kind, []))


def _required(value, what: str):
    if value is None:
        # MLeap's `model.value(name)` on a missing attribute: a NoSuchElementException "key not found".
        raise BundleError(f"key not found: {what}")
    return value


@dataclass
class Node:
    """One op of the bundle with its sockets (node.json) and attributes (model.json)."""

    name: str
    op: str
    attributes: dict
    inputs: list[tuple[str, str]]  # (port, field name)
    outputs: list[tuple[str, str]]
    path: Path
    children: list["Node"] = field(default_factory=list)

    def input_named(self, port: str) -> str:
        for socket_port, name in self.inputs:
            if socket_port == port:
                return name
        raise BundleError(f"node {self.name} ({self.op}) has no input port {port!r}")

    def output_named(self, port: str) -> str:
        for socket_port, name in self.outputs:
            if socket_port == port:
                return name
        raise BundleError(f"node {self.name} ({self.op}) has no output port {port!r}")


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise BundleError(f"{path} is missing: is this an unzipped MLeap bundle (bundle.json + root/)?") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from None


def _load_node(path: Path) -> Node:
    model = _read_json(path / "model.json")
    node = _read_json(path / "node.json")
    op = model.get("op")
    if op not in SUPPORTED_OPS:
        raise BundleError(
            f"MLeap op {op!r} (node {node.get('name', path.name)}) is not supported by the local MLeap runtime; "
            f"supported ops: {', '.join(SUPPORTED_OPS)}"
        )
    shape = node.get("shape", {})
    loaded = Node(
        name=node.get("name", path.name),
        op=op,
        attributes=model.get("attributes", {}),
        inputs=[(s["port"], s["name"]) for s in shape.get("inputs", [])],
        outputs=[(s["port"], s["name"]) for s in shape.get("outputs", [])],
        path=path,
    )
    if op == "pipeline":
        names = _required(_list(loaded.attributes, "nodes", "string"), "nodes")
        # GraphSerializer: each child lives in "<name>.node" under its parent's directory.
        loaded.children = [_load_node(path / f"{child}.node") for child in names]
    return loaded


# --- compiled operations ----------------------------------------------------------

Step = Callable[[list], None]


class _Slots:
    """Column name -> (slot index, type) while compiling; mirrors a LeapFrame's schema."""

    def __init__(self, fields: list[tuple[str, str]]):
        self.index: dict[str, int] = {}
        self.types: dict[str, str] = {}
        for name, type_name in fields:
            if name in self.index:
                raise MleapError(f"struct already has field: {name}")
            self.index[name] = len(self.index)
            self.types[name] = type_name

    def read(self, name: str) -> tuple[int, str]:
        if name not in self.index:
            raise MleapError(f"invalid field: {name}")
        return self.index[name], self.types[name]

    def add(self, name: str, type_name: str) -> int:
        if name in self.index:
            raise MleapError(f"struct already has field: {name}")
        self.index[name] = len(self.index)
        self.types[name] = type_name
        return self.index[name]

    def __len__(self) -> int:
        return len(self.index)


def _to_string_cast(type_name: str) -> Callable | None:
    """MLeap Casting.basicCast to String for a column of `type_name` (None: already a string)."""
    if type_name == "string":
        return None
    if type_name == "double":
        return java_double_str
    if type_name == "float":
        return java_float_str
    if type_name in ("byte", "short", "int", "long"):
        return str
    if type_name == "boolean":
        return lambda v: "1" if v else "0"
    raise MleapError(f"Cannot cast {type_name} -> string")


def _string_to_double(value: str):
    if value == "null" or value == "":
        return None
    try:
        return parse_java_double(value)
    except JavaNumberFormatException as exc:
        raise MleapError(str(exc)) from None


def _string_to_boolean(value: str) -> bool:
    if value in ("true", "yes"):
        return True
    if value in ("false", "no", ""):
        return False
    if value.isdigit():
        return float(value) != 0
    return True


def _to_double_cast(type_name: str) -> Callable | None:
    """MLeap Casting to Double for a column of `type_name` (None: already a double)."""
    if type_name == "double":
        return None
    if type_name in ("byte", "short", "int", "long", "float"):
        return float
    if type_name == "boolean":
        return lambda v: 1.0 if v else 0.0
    if type_name == "string":
        return _string_to_double
    raise MleapError(f"Cannot cast {type_name} -> double")


_NULL_VALUE = object()


def _compile_string_indexer(node: Node, slots: _Slots) -> Step:
    attributes = node.attributes
    handle_invalid = _scalar(attributes, "handle_invalid", "string", "")
    handle_invalid = "error" if handle_invalid is None else handle_invalid
    if handle_invalid not in ("error", "skip", "keep"):
        raise BundleError(f"Invalid handler: {handle_invalid}")
    labels_length = _scalar(attributes, "labels_length", "int", 0)
    if labels_length is None:  # bundles written for Spark 2 / mleap-spark < 0.17
        labels = _required(_list(attributes, "labels", "string"), "labels")
    elif labels_length == 1:
        labels = _required(_list(attributes, "labels_array_0", "string"), "labels_array_0")
    else:
        raise BundleError("Multi-input StringIndexer not supported yet.")
    index_of = {label: float(i) for i, label in enumerate(labels)}
    invalid_index = float(len(labels))
    source, source_type = slots.read(node.input_named("input"))
    cast = _to_string_cast(source_type)
    target = slots.add(node.output_named("output"), "double")
    keep = handle_invalid == "keep"
    if handle_invalid != "skip":
        return _IndexerSpec(source, cast, target, index_of, keep, invalid_index)

    if handle_invalid == "skip":
        # StringIndexer.transform: builder.filter(input)(stringToIndex.contains) before withColumn.
        def skip_step(row: list) -> None:
            value = row[source]
            if value is not None and cast is not None:
                value = cast(value)
            index = index_of.get(value) if value is not None else None
            if index is None:
                raise RowSkipped(node.name)
            row[target] = index
    return skip_step


@dataclass(frozen=True)
class _IndexerSpec:
    """A keep/error StringIndexer; runs of them become one step (see _indexers_step)."""

    source: int
    cast: Callable | None
    target: int
    index_of: dict
    keep: bool
    invalid_index: float


def _indexers_step(specs: list[_IndexerSpec]) -> Step:
    plan = tuple((s.source, s.cast, s.target, s.index_of, s.keep, s.invalid_index) for s in specs)

    def step(row: list) -> None:
        for source, cast, target, index_of, keep, invalid_index in plan:
            value = row[source]
            if value is None:
                if keep:
                    row[target] = invalid_index
                    continue
                raise MleapError("StringIndexer encountered NULL value. To handle NULLS, set handleInvalid to keep")
            if cast is not None:
                value = cast(value)
            index = index_of.get(value)
            if index is None:
                if not keep:
                    raise MleapError(f"Unseen label: {value}. To handle unseen labels, set handleInvalid to keep")
                index = invalid_index
            row[target] = index
    return step


def _compile_one_hot_encoder(node: Node, slots: _Slots) -> Step:
    attributes = node.attributes
    drop_last = bool(_required(_scalar(attributes, "drop_last", "boolean", False), "drop_last"))
    if _scalar(attributes, "size", "long", 0) is not None:  # pre-Spark-3 single-column encoder
        category_sizes = [int(_scalar(attributes, "size", "long", 0))]
        handle_invalid = _scalar(attributes, "handle_invalid", "string", "")
        handle_invalid = handle_invalid if handle_invalid is not None else ("keep" if drop_last else "error")
        inputs = [node.input_named("input")]
        outputs = [node.output_named("output")]
    else:
        category_sizes = [int(v) for v in _required(_list(attributes, "category_sizes", "int"), "category_sizes")]
        handle_invalid = _required(_scalar(attributes, "handle_invalid", "string", ""), "handle_invalid")
        inputs = [node.input_named(f"input{i}") for i in range(len(category_sizes))]
        outputs = [node.output_named(f"output{i}") for i in range(len(category_sizes))]
    if handle_invalid not in ("error", "keep"):  # HandleInvalid.fromString(_, canSkip = false)
        raise BundleError(f"Invalid handler: {handle_invalid}")
    keep = handle_invalid == "keep"
    if not drop_last and keep:
        sizes = [size + 1 for size in category_sizes]
    elif drop_last and not keep:
        sizes = [size - 1 for size in category_sizes]
    else:
        sizes = list(category_sizes)

    sources = []
    for name in inputs:
        index, type_name = slots.read(name)
        sources.append((index, _to_double_cast(type_name)))
    columns = []
    for source, size, category_size, name in zip(sources, sizes, category_sizes, outputs):
        columns.append((source[0], source[1], slots.add(name, VECTOR), size, category_size))
    empty = {size: SparseVector(size, (), ()) for size in set(sizes)}
    one_hot = {(size, i): SparseVector(size, (i,), (1.0,)) for size in set(sizes) for i in range(size)}
    # Valid labels 0.0 .. category_size-1 map straight to their vector.
    tables = [{float(i): (one_hot[(size, i)] if i < size else empty[size]) for i in range(category_size)}
              for _, _, _, size, category_size in columns]
    fast_columns = tuple((source, cast, target, table) for (source, cast, target, _, _), table in zip(columns, tables))

    def step(row: list) -> None:
        for source, cast, target, table in fast_columns:
            label = row[source]
            if cast is not None:
                label = cast(label)
            vector = table.get(label)
            if vector is None:
                general(row)
                return
            row[target] = vector

    def general(row: list) -> None:
        for source, cast, target, size, category_size in columns:
            label = row[source]
            if cast is not None:
                label = cast(label)
            if label is None:
                raise MleapError("null value for a one-hot encoder input")
            label_int = java_int32(label)
            if label != label_int:
                raise MleapError(f"invalid label: {java_double_str(label)}, must be integer")
            if 0 <= label < category_size:
                index = label_int
            elif keep:
                index = category_size
            elif label < 0:
                raise MleapError(
                    f"Negative value: {java_double_str(label)}. Input can't be negative. "
                    "To handle invalid values, set Param handleInvalid to Keep"
                )
            else:
                raise MleapError(
                    f"Unseen value: {java_double_str(label)}. To handle unseen values, "
                    "set Param handleInvalid to Keep"
                )
            row[target] = one_hot[(size, index)] if index < size else empty[size]
    return step


def _compile_vector_assembler(node: Node, slots: _Slots) -> Step:
    shapes = _required(_list(node.attributes, "input_shapes", "data_shape"), "input_shapes")
    inputs = [node.input_named(f"input{i}") for i in range(len(shapes))]
    sources = []
    for name, shape in zip(inputs, shapes):
        index, type_name = slots.read(name)
        base = shape.get("base", "scalar")
        if base not in ("scalar", "tensor"):
            raise BundleError(f"must provide scalar and vector shapes as inputs ({node.name}: {base})")
        sources.append((index, None if type_name == VECTOR else _to_double_cast(type_name), type_name == VECTOR))
    target = slots.add(node.output_named("output"), VECTOR)

    def step(row: list) -> None:
        # VectorAssemblerModel.apply keeps only non-zero entries (so -0.0 becomes 0.0)
        # and returns a compressed vector; a dense list is what it densifies to.
        out: list[float] = []
        for source, cast, is_vector in sources:
            value = row[source]
            if is_vector:
                if value.__class__ is SparseVector:
                    out.extend(value.dense)
                else:
                    out.extend(v if v != 0.0 else 0.0 for v in value)
            else:
                if cast is not None:
                    value = cast(value)
                if value is None:
                    raise MleapError(f"null value in vector assembler input of {node.name}")
                out.append(value if value != 0.0 else 0.0)
        row[target] = out
    return step


def _compile_reverse_string_indexer(node: Node, slots: _Slots) -> Step:
    labels = _required(_list(node.attributes, "labels", "string"), "labels")
    shape = node.attributes.get("input_shape", {}).get("data_shape", {"base": "scalar", "isNullable": False})
    if shape.get("isNullable", False):
        raise BundleError("requirement failed: cannot take null inputs")
    if shape.get("base", "scalar") != "scalar":
        raise BundleError(
            f"reverse_string_indexer {node.name}: input shape {shape.get('base')!r} is not supported "
            "by the local MLeap runtime (only scalar)"
        )
    label_of = dict(enumerate(labels))
    source, source_type = slots.read(node.input_named("input"))
    cast = _to_double_cast(source_type)
    target = slots.add(node.output_named("output"), "string")

    def step(row: list) -> None:
        value = row[source]
        if cast is not None:
            value = cast(value)
        if value is None:
            raise MleapError(f"value at {source} is null")
        index = java_int32(value)
        label = label_of.get(index)
        if label is None:
            raise MleapError(f"key not found: {index}")
        row[target] = label
    return step


def _non_nullable_double(node: Node, slots: _Slots, port: str = "input") -> tuple[int, Callable | None]:
    """A `(value: Double) => ...` UDF input: cast to double, and null refused (Casting, nullable -> non-nullable)."""
    source, source_type = slots.read(node.input_named(port))
    return source, _to_double_cast(source_type)


def _compile_imputer(node: Node, slots: _Slots) -> Step:
    attributes = node.attributes
    surrogate = float(_required(_scalar(attributes, "surrogate_value", "double", 0.0), "surrogate_value"))
    _required(_scalar(attributes, "strategy", "string", ""), "strategy")
    missing = _scalar(attributes, "missing_value", "double", 0.0)
    missing = math.nan if missing is None else float(missing)  # ImputerOp: getOrElse(Double.NaN)
    nullable = _scalar(attributes, "nullable_input", "boolean", False)
    nullable = True if nullable is None else bool(nullable)  # ImputerOp: getOrElse(true)
    source, source_type = slots.read(node.input_named("input"))
    cast = _to_double_cast(source_type)
    target = slots.add(node.output_named("output"), "double")

    def step(row: list) -> None:
        value = row[source]
        if value is not None and cast is not None:
            # Casting String -> Double: "" and "null" are null, anything else Double.parseDouble.
            value = cast(value)
        if value is None:
            if not nullable:
                raise MleapError("trying to cast null to non-nullable value")
            row[target] = surrogate
            return
        # ImputerModel.apply: NaN or the missing value -> the surrogate.
        row[target] = surrogate if value != value or value == missing else value
    return step


def _compile_bucketizer(node: Node, slots: _Slots) -> Step:
    attributes = node.attributes
    handle_invalid = _scalar(attributes, "handle_invalid", "string", "")
    handle_invalid = "error" if handle_invalid is None else handle_invalid
    if handle_invalid not in ("error", "skip", "keep"):
        raise BundleError(f"Invalid handler: {handle_invalid}")
    splits = [float(v) for v in _required(_list(attributes, "splits", "double"), "splits")]
    # BucketizerUtil.restoreSplits: NaN at either end means an open end.
    if splits and math.isnan(splits[0]):
        splits[0] = -math.inf
    if splits and math.isnan(splits[-1]):
        splits[-1] = math.inf
    source, cast = _non_nullable_double(node, slots)
    target = slots.add(node.output_named("output"), "double")
    keep, skip = handle_invalid == "keep", handle_invalid == "skip"

    def bucket(value: float) -> float:
        # BucketizerModel.binarySearchForBuckets.
        if value != value:
            if skip:
                raise RowSkipped(node.name)
            if keep:
                return float(len(splits) - 1)
            raise MleapError("Bucketizer encountered NaN value. To handle or skip NaNs, try setting "
                             "Bucketizer.handleInvalid.")
        if value == splits[-1]:
            return float(len(splits) - 2)
        position = bisect.bisect_left(splits, value)
        if position < len(splits) and splits[position] == value:
            return float(position)
        if position == 0 or position == len(splits):
            raise MleapError(f"Feature value {java_double_str(value)} out of Bucketizer bounds "
                             f"[{java_double_str(splits[0])}, {java_double_str(splits[-1])}]. Check your features, "
                             "or loosen the lower/upper bound constraints.")
        return float(position - 1)

    def step(row: list) -> None:
        value = row[source]
        if value is not None and cast is not None:
            value = cast(value)
        if value is None:
            raise MleapError("trying to cast null to non-nullable value")
        row[target] = bucket(value)
    return step


def _compile_binarizer(node: Node, slots: _Slots) -> Step:
    attributes = node.attributes
    threshold = _scalar(attributes, "threshold", "double", 0.0)
    thresholds = _list(attributes, "thresholds", "double")
    if threshold is None and thresholds is None:
        raise BundleError("Neither threshold nor thresholds were found")
    if threshold is not None and thresholds is not None:
        raise BundleError("Both thresholds and threshold were found")
    if threshold is None:
        raise BundleError("Multi-column Binarizer not supported yet")
    shape = _required((attributes.get("input_shapes") or {}).get("data_shape"), "input_shapes")
    if shape.get("base", "scalar") != "scalar":
        raise BundleError(f"binarizer {node.name}: input shape {shape.get('base')!r} is not supported by the "
                          "local MLeap runtime (only scalar)")
    threshold = float(threshold)
    source, cast = _non_nullable_double(node, slots)
    target = slots.add(node.output_named("output"), "double")

    def step(row: list) -> None:
        value = row[source]
        if value is not None and cast is not None:
            value = cast(value)
        if value is None:
            raise MleapError("trying to cast null to non-nullable value")
        # BinarizerModel.apply: strictly greater than the threshold.
        row[target] = 1.0 if value > threshold else 0.0
    return step


def _compile_regex_indexer(node: Node, slots: _Slots) -> Step:
    """RegexIndexerModel.apply: the index of the first pattern found anywhere in the text (Java's
    Regex.findFirstMatchIn; the writer's patterns read the same in Python), else default_value."""
    attributes = node.attributes
    patterns = [re.compile(p) for p in _required(_list(attributes, "regexes", "string"), "regexes")]
    indices = [int(i) for i in _required(_list(attributes, "indices", "int"), "indices")]
    default = _scalar(attributes, "default_value", "int", 0)
    source, source_type = slots.read(node.input_named("input"))
    cast = _to_string_cast(source_type)
    target = slots.add(node.output_named("output"), "int")
    lookup = list(zip(patterns, indices))

    def step(row: list) -> None:
        value = row[source]
        if value is not None and cast is not None:
            value = cast(value)
        for pattern, index in lookup:
            if value is not None and pattern.search(value):
                row[target] = index
                return
        if default is None:
            raise MleapError("None.get")  # orElse(defaultIndex).get on no match and no default
        row[target] = int(default)
    return step


def _java_divide(a: float, b: float) -> float:
    if b == 0.0:
        if a != a or a == 0.0:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _java_remainder(a: float, b: float) -> float:
    # Java's % on doubles: the sign of the dividend (math.fmod), NaN for a zero divisor or an infinite dividend.
    if b == 0.0 or a != a or b != b or math.isinf(a):
        return math.nan
    return a if math.isinf(b) else math.fmod(a, b)


def _java_min(a: float, b: float) -> float:
    if a != a or b != b:
        return math.nan
    return a if (a < b or (a == b and math.copysign(1.0, a) < 0)) else b


def _java_max(a: float, b: float) -> float:
    if a != a or b != b:
        return math.nan
    return a if (a > b or (a == b and math.copysign(1.0, a) > 0)) else b


_BINARY = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b, "div": _java_divide,
           "rem": _java_remainder, "min": _java_min, "max": _java_max}


def _compile_math_binary(node: Node, slots: _Slots) -> Step:
    """MathBinaryModel.apply on doubles: each side a column (input_a, input_b) or a constant (da, db)."""
    attributes = node.attributes
    operation = _required(_scalar(attributes, "operation", "string", ""), "operation")
    if operation not in _BINARY:
        raise BundleError(f"math_binary {node.name}: operation {operation!r} is not supported by the local MLeap "
                          f"runtime ({', '.join(_BINARY)})")
    apply = _BINARY[operation]
    ports = {port for port, _ in node.inputs}
    read_columns = [column for _, column in node.inputs]
    if len(set(read_columns)) < len(read_columns):
        # The transformer's input schema names each column once (StructType.withField).
        raise MleapError(f"struct already has field: {read_columns[0]}")

    def side(port: str, constant: str):
        if port in ports:
            index, cast = _non_nullable_double(node, slots, port)
            return index, cast, None
        value = _scalar(attributes, constant, "double", 0.0)
        if value is None:
            raise MleapError("None.get")  # ma.getOrElse(da.get)
        return None, None, float(value)

    a_index, a_cast, a_value = side("input_a", "da")
    b_index, b_cast, b_value = side("input_b", "db")
    target = slots.add(node.output_named("output"), "double")

    def read(row: list, index, cast, constant):
        if index is None:
            return constant
        value = row[index]
        if value is not None and cast is not None:
            value = cast(value)
        if value is None:
            raise MleapError("trying to cast null to non-nullable value")
        return float(value)

    def step(row: list) -> None:
        row[target] = apply(read(row, a_index, a_cast, a_value), read(row, b_index, b_cast, b_value))
    return step


_COMPILERS = {
    "regex_indexer": _compile_regex_indexer,
    "math_binary": _compile_math_binary,
    "string_indexer": _compile_string_indexer,
    "one_hot_encoder": _compile_one_hot_encoder,
    "vector_assembler": _compile_vector_assembler,
    "reverse_string_indexer": _compile_reverse_string_indexer,
    "imputer": _compile_imputer,
    "bucketizer": _compile_bucketizer,
    "binarizer": _compile_binarizer,
}


def _compile(node: Node, slots: _Slots, steps: list) -> None:
    if node.op == "pipeline":
        for child in node.children:
            _compile(child, slots, steps)
    else:
        steps.append(_COMPILERS[node.op](node, slots))


def _fuse(compiled: list) -> tuple:
    steps, run = [], []
    for item in compiled + [None]:
        if isinstance(item, _IndexerSpec):
            run.append(item)
            continue
        if run:
            steps.append(_indexers_step(run))
            run = []
        if item is not None:
            steps.append(item)
    return tuple(steps)


@dataclass
class RowProgram:
    """The bundle compiled for one input schema: input values in schema order -> output value."""

    steps: tuple
    padding: list  # the slots the stages fill, after the inputs
    output_slot: int
    output_type: str
    # The output is computed by an op (never a negative zero in a vector), not an input passed through.
    output_computed: bool

    def run(self, values: list):
        """Values in input-schema order -> the output field's value (RowSkipped/MleapError like MLeap)."""
        row = values + self.padding
        for step in self.steps:
            step(row)
        return row[self.output_slot]


class MleapBundle:
    """A loaded bundle; `program()` compiles it for a LeapFrame schema."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        info = _read_json(self.path / "bundle.json")
        if info.get("format", "json") != "json":
            raise BundleError(
                f"{self.path}: bundle format {info.get('format')!r}; only JSON bundles are supported "
                "(the Glue job writes JSON bundles)"
            )
        self.name = info.get("name")
        self.version = info.get("version")
        self.root = _load_node(self.path / "root")
        self._programs: dict[tuple, RowProgram] = {}
        # Compiling once with an all-string schema surfaces attribute errors at load, not first request.
        self._check_attributes(self.root)

    def _check_attributes(self, node: Node) -> None:
        if node.op == "pipeline":
            for child in node.children:
                self._check_attributes(child)
            return
        probe = _Slots([(name, VECTOR if node.op == "vector_assembler" else "string") for _, name in node.inputs])
        try:
            _COMPILERS[node.op](node, probe)
        except MleapError:
            pass

    def program(self, input_fields: tuple[tuple[str, str], ...], output_name: str) -> RowProgram:
        """Compile for inputs [(name, type)] (types: boolean..string or 'vector') and one output field."""
        key = (input_fields, output_name)
        program = self._programs.get(key)
        if program is None:
            slots = _Slots(list(input_fields))
            compiled: list = []
            _compile(self.root, slots, compiled)
            if output_name not in slots.index:
                raise MleapError(f"invalid fields: {output_name}")
            program = RowProgram(_fuse(compiled), [None] * (len(slots) - len(input_fields)),
                                 slots.index[output_name], slots.types[output_name],
                                 slots.index[output_name] >= len(input_fields))
            self._programs[key] = program
        return program
