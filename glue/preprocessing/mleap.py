"""MLeap's JSON bundle format, as MLeap runtime 0.20.0 (SageMaker SparkML Serving 3.3) reads it.

The job writes its MLeap bundles itself: no MLeap serializer exists for Spark 3.5, and none is
needed to write a few JSON files. What each op's loader reads is in combust/mleap v0.20.0,
mleap-runtime/.../bundle/ops/feature/<Op>Op.scala, and bundle-ml's json/JsonSupport.scala. The
ops themselves (each op's JSON next to its Spark twin) are in preprocessing.ops; turning a fitted
pipeline into nodes is preprocessing.bundle.
"""
from __future__ import annotations

import json
import tarfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

# What SageMaker SparkML Serving 3.3 runs; the bundles are checked against it by tests/jvm.
MLEAP_SERVING_RUNTIME = "0.20.0"


BUNDLE_FORMAT_VERSION = MLEAP_SERVING_RUNTIME


@dataclass(frozen=True)
class ColumnShape:
    """A column's MLeap data shape: a scalar, or a tensor (a Spark vector) of `size` doubles."""

    size: int | None = None  # None: scalar
    nullable: bool = True

    def to_json(self) -> dict:
        # DataShape and TensorDimension are read with spray's jsonFormat: every field must be present,
        # including isNullable and a dimension's (empty) name.
        if self.size is None:
            return {"base": "scalar", "isNullable": self.nullable}
        return {"base": "tensor", "isNullable": self.nullable,
                "tensorShape": {"dimensions": [{"size": self.size, "name": ""}]}}


SCALAR = ColumnShape()


@dataclass(frozen=True)
class BundleNode:
    name: str
    op: str
    attributes: dict
    inputs: list  # [(port, column)]
    outputs: list


def value_string(value: str) -> dict:
    return {"string": value}


def value_int(value: int) -> dict:
    return {"int": int(value)}


def value_boolean(value: bool) -> dict:
    return {"boolean": bool(value)}


def value_double(value: float) -> dict:
    # JSON has no NaN or infinity, and spray-json reads none: callers refuse non-finite values.
    return {"double": float(value)}


def value_list(kind: str, values: list) -> dict:
    return {kind: list(values), "type": "list"}


def write_bundle(name: str, nodes: list[BundleNode], directory: Path) -> None:
    """An unzipped JSON bundle: bundle.json, root/{model,node}.json, root/<node>.node/{model,node}.json."""
    root = directory / "root"
    root.mkdir(parents=True)

    def put(path: Path, document: dict) -> None:
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

    for node in nodes:
        # GraphSerializer reads each pipeline child from "<name>.node" next to the pipeline's files.
        node_dir = root / f"{node.name}.node"
        node_dir.mkdir()
        put(node_dir / "model.json", {"op": node.op, "attributes": node.attributes})
        put(node_dir / "node.json", {"name": node.name, "shape": {
            "inputs": [{"port": p, "name": c} for p, c in node.inputs],
            "outputs": [{"port": p, "name": c} for p, c in node.outputs]}})
    put(root / "model.json", {"op": "pipeline", "attributes": {"nodes": value_list("string", [n.name for n in nodes])}})
    put(root / "node.json", {"name": name, "shape": {"inputs": [], "outputs": []}})
    # bundle.json is read with jsonFormat6(Bundle): uid must parse as a UUID, format is "json"; meta is optional.
    put(directory / "bundle.json", {
        "uid": str(uuid.uuid4()),
        "name": name,
        "format": "json",
        "version": BUNDLE_FORMAT_VERSION,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
    })


def bundle_tarball(name: str, nodes: list[BundleNode], workdir: Path) -> Path:
    """model.tar.gz with bundle.json and root/ at the top, as SparkML Serving unpacks it into /opt/ml/model."""
    unpacked = workdir / name
    write_bundle(name, nodes, unpacked)
    tarball = workdir / f"{name}.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for entry in sorted(unpacked.iterdir()):
            tar.add(entry, arcname=entry.name)
    return tarball
