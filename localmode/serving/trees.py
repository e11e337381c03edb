"""Fast single-row prediction for XGBoost tree models.

`Booster.predict`/`inplace_predict` cost about 190 us per call on one row, almost
all of it per-call overhead (REFERENCE.md 1); the trees themselves take a few
microseconds. This module reads the model's own JSON (`Booster.save_raw("json")`),
lays the trees out as flat arrays and walks them in a 60-line C function
(`_forest.c`, compiled once with the machine's C compiler and cached), adding
leaves in float32 in XGBoost's order. It is used only when it can be exact:
gbtree models with numerical splits and an objective whose output it reproduces
(multi:softmax, reg:squarederror/reg:linear, binary:logitraw), and only after a
self-check against xgboost at load. Anything else returns None and the caller
uses xgboost itself.
"""
from __future__ import annotations

import ctypes
from array import array
import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_SOURCE = Path(__file__).with_name("_forest.c")
_IDENTITY_OBJECTIVES = ("reg:squarederror", "reg:linear", "binary:logitraw")
_SUPPORTED_OBJECTIVES = ("multi:softmax",) + _IDENTITY_OBJECTIVES
_build_lock = threading.Lock()
_library: ctypes.CDLL | None = None


class _Forest(ctypes.Structure):
    _fields_ = [
        ("n_trees", ctypes.c_int32),
        ("n_groups", ctypes.c_int32),
        ("n_features", ctypes.c_int32),
        ("roots", ctypes.c_void_p),
        ("groups", ctypes.c_void_p),
        ("nodes", ctypes.c_void_p),
        ("base_margin", ctypes.c_void_p),
    ]


# Must match node_t in _forest.c.
_NODE_DTYPE = np.dtype(
    [("left", np.int32), ("right", np.int32), ("feature", np.int32), ("value", np.float32), ("default_left", np.int32)]
)


def _cache_dir() -> Path:
    from localmode import REPO_ROOT

    preferred = Path(os.environ.get("LOCALMODE_CACHE", REPO_ROOT / ".cache")) / "serving"
    try:
        preferred.mkdir(parents=True, exist_ok=True)
        return preferred
    except OSError:
        fallback = Path(tempfile.gettempdir()) / "localmode-serving"
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


def _load_library() -> ctypes.CDLL | None:
    """The compiled evaluator, built on first use; None when no C compiler is available."""
    global _library
    with _build_lock:
        if _library is not None:
            return _library
        source = _SOURCE.read_bytes()
        digest = hashlib.sha256(source).hexdigest()[:16]
        target = _cache_dir() / f"forest-{digest}.so"
        if not target.exists():
            compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
            if compiler is None:
                log.warning("no C compiler found: the local XGBoost container uses xgboost's predict (slower)")
                return None
            partial = target.with_suffix(f".{os.getpid()}.tmp")
            # -O2 without -ffast-math: IEEE float semantics, as XGBoost's own build.
            command = [compiler, "-O2", "-std=c99", "-shared", "-fPIC", "-o", str(partial), str(_SOURCE), "-lm"]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                log.warning("compiling %s failed (%s); using xgboost's predict", _SOURCE.name, result.stderr.strip())
                return None
            partial.replace(target)
        library = ctypes.CDLL(str(target))
        library.forest_argmax.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32]
        library.forest_argmax.restype = ctypes.c_int32
        library.forest_margins.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p]
        library.forest_margins.restype = None
        _library = library
        return library


class CompiledForest:
    """The model's trees as flat arrays, evaluated by the compiled function."""

    def __init__(self, model: dict, tree_limit: int, library: ctypes.CDLL):
        learner = model["learner"]
        booster = learner["gradient_booster"]
        trees = booster["model"]["trees"][:tree_limit]
        tree_info = booster["model"]["tree_info"][:tree_limit]
        params = learner["learner_model_param"]
        self.objective = learner["objective"]["name"]
        self.n_features = int(params["num_feature"])
        self.n_groups = max(1, int(params.get("num_class", "0")))
        base_score = float(params["base_score"])

        roots, left, right, feature, value, default_left = [], [], [], [], [], []
        for tree in trees:
            offset = len(left)
            roots.append(offset)
            for lchild, rchild in zip(tree["left_children"], tree["right_children"]):
                left.append(-1 if lchild == -1 else offset + lchild)
                right.append(-1 if rchild == -1 else offset + rchild)
            feature.extend(tree["split_indices"])
            # For a leaf, XGBoost stores the leaf value where a split keeps its condition.
            value.extend(tree["split_conditions"])
            default_left.extend(tree["default_left"])
        nodes = np.zeros(len(left), dtype=_NODE_DTYPE)
        nodes["left"], nodes["right"], nodes["feature"] = left, right, feature
        nodes["value"], nodes["default_left"] = value, default_left
        self._arrays = {
            "roots": np.asarray(roots, dtype=np.int32),
            "groups": np.asarray(tree_info, dtype=np.int32),
            "nodes": nodes,
            "base_margin": np.full(self.n_groups, base_score, dtype=np.float32),
        }
        arrays = self._arrays
        self._forest = _Forest(
            len(trees), self.n_groups, self.n_features,
            *(arrays[name].ctypes.data for name in ("roots", "groups", "nodes", "base_margin")),
        )
        self._forest_ref = ctypes.byref(self._forest)
        self._argmax = library.forest_argmax
        self._margins = library.forest_margins
        self._margin_type = ctypes.c_float * self.n_groups

    def predict_row(self, row: list[float]) -> float:
        """XGBoost's prediction for one row of `n_features` floats (NaN = missing)."""
        # array('f') converts to float32 like DMatrix does, at a fraction of ctypes' cost.
        buffer = array("f", row)
        address = buffer.buffer_info()[0]
        if self.objective == "multi:softmax":
            return float(self._argmax(self._forest_ref, address, len(buffer)))
        margins = self._margin_type()
        self._margins(self._forest_ref, address, len(buffer), margins)
        return margins[0]


def model_json(booster) -> dict:
    return json.loads(booster.save_raw(raw_format="json"))


def iteration_range(booster, model: dict | None = None) -> tuple[int, int]:
    """The boosting rounds `Booster.predict(ntree_limit=best_ntree_limit)` uses (what the XGBoost
    container calls), as xgboost 1.7 converts it; (0, 0) means every round."""
    ntree_limit = getattr(booster, "best_ntree_limit", 0) or 0
    if not ntree_limit:
        return (0, 0)
    model = model or model_json(booster)
    gbtree = model["learner"]["gradient_booster"]["model"]
    num_parallel_tree = max(1, int(gbtree["gbtree_model_param"].get("num_parallel_tree", "1")))
    return (0, ntree_limit // num_parallel_tree)


def _tree_limit(booster, model: dict) -> int:
    """How many trees (in order) those rounds hold."""
    trees = model["learner"]["gradient_booster"]["model"]["trees"]
    _, rounds = iteration_range(booster, model)
    if rounds == 0:
        return len(trees)
    gbtree = model["learner"]["gradient_booster"]["model"]
    num_parallel_tree = max(1, int(gbtree["gbtree_model_param"].get("num_parallel_tree", "1")))
    num_groups = max(1, int(model["learner"]["learner_model_param"].get("num_class", "0")))
    return min(len(trees), rounds * num_parallel_tree * num_groups)


def compile_booster(booster, probe_rows: int = 512, seed: int = 7) -> CompiledForest | None:
    """A CompiledForest equivalent to `booster.predict(DMatrix(row), ntree_limit=best_ntree_limit)`, or None."""
    model = model_json(booster)
    learner = model["learner"]
    gradient_booster = learner["gradient_booster"]
    objective = learner["objective"]["name"]
    if gradient_booster.get("name") != "gbtree" or objective not in _SUPPORTED_OBJECTIVES:
        log.info("no compiled path for booster %s / objective %s", gradient_booster.get("name"), objective)
        return None
    if any(tree.get("categories_nodes") for tree in gradient_booster["model"]["trees"]):
        return None
    library = _load_library()
    if library is None:
        return None
    forest = CompiledForest(model, _tree_limit(booster, model), library)
    if forest.n_groups > 256 or (objective != "multi:softmax" and forest.n_groups != 1):
        return None
    if not _agrees_with_xgboost(forest, booster, probe_rows, seed):
        log.warning("compiled trees disagree with xgboost on probe rows; using xgboost's predict")
        return None
    return forest


def _agrees_with_xgboost(forest: CompiledForest, booster, probe_rows: int, seed: int) -> bool:
    """Probe rows mixing 0/1 (one-hot inputs), real values and missing values."""
    import xgboost

    rng = np.random.default_rng(seed)
    width = forest.n_features
    rows = rng.integers(0, 2, size=(probe_rows, width)).astype(np.float64)
    rows[probe_rows // 2:] = rng.normal(size=(probe_rows - probe_rows // 2, width))
    rows[rng.random(size=rows.shape) < 0.05] = math.nan
    expected = booster.predict(xgboost.DMatrix(rows), iteration_range=iteration_range(booster),
                               validate_features=False)
    for row, want in zip(rows.tolist(), expected.tolist()):
        if forest.predict_row(row) != want:
            return False
    return True
