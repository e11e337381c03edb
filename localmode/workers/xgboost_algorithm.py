"""SageMaker's built-in XGBoost 1.7-1 algorithm's training, as its container runs it.

Read from aws/sagemaker-xgboost-container, branch 1.7-1 (not copied; the rules are
restated here as a table and a few functions):

- hyperparameter names, types, ranges and dependencies:
  src/sagemaker_xgboost_container/algorithm_mode/hyperparameter_validation.py, checked the
  way src/sagemaker_algorithm_toolkit/hyperparameter_validation.py (`Hyperparameters.validate`)
  checks them: aliases, then required names, then parsing, then ranges, then dependencies;
- what reaches `xgb.train`: algorithm_mode/train.py (`sagemaker_train`, `train_job`),
  algorithm_mode/train_utils.py (`get_eval_metrics_and_feval`), callback.py (`get_callbacks`:
  early stopping on the validation channel's last `eval_metric`, `save_best=True`),
  metrics/custom_metrics.py (the metrics the container computes itself, given to xgboost as
  `feval`), constants/xgb_constants.py (metric lists, the error texts that count as the
  user's fault);
- how a failure reaches DescribeTrainingJob: sagemaker-containers 2.8.6.post2 (the version
  the 1.7-1 image pins), src/sagemaker_containers/_trainer.py lines 102-122: the toolkit's
  UserError is not sagemaker_containers' ClientError, so the failure file says
  "framework error: \\n<traceback>\\n<message>" and SageMaker reports the job's
  FailureReason as "AlgorithmError: framework error: ..." (as in the reports in
  aws/amazon-sagemaker-examples#1740 and #4555). SageMaker keeps the first 1024 characters,
  which a full traceback can fill before the message (#1740's reason stops inside the
  traceback); locally the traceback is reduced to its last line, so the message shows.

Not emulated (refused with a clear message instead): `_kfold` cross-validation, Dask GPU
training, checkpoints, `save_model_on_termination`'s SIGTERM handling, Pipe mode.
"""
from __future__ import annotations

import ast
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

# constants/xgb_constants.py
MAXIMIZE_METRICS = ("accuracy", "auc", "aucpr", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "map", "ndcg",
                    "precision", "r2", "recall", "precision_macro", "precision_micro", "recall_macro",
                    "recall_micro")
MINIMIZE_METRICS = ("aft-nloglik", "cox-nloglik", "error", "gamma-deviance", "gamma-nloglik",
                    "interval-regression-accuracy", "logloss", "mae", "mape", "merror", "mlogloss", "mphe", "mse",
                    "poisson-nloglik", "rmse", "rmsle", "tweedie-nloglik")
CUSTOMER_ERRORS = (
    "label must be in [0,1] for logistic regression",
    "label must be in [0, num_class)",
    "Target is multiclass but average='binary'",
    "feature_names mismatch",
    "Check failed: preds.size() == info.labels_.size()",
    "Check failed: !auc_error AUC: the dataset only contains pos or neg samples",
    "Check failed: base_score > 0.0f && base_score < 1.0f base_score must be in (0,1) for logistic loss",
    "Check failed: label_correct PoissonRegression: label must be nonnegative",
    "Check failed: label_correct TweedieRegression: label must be nonnegative",
    "Parameter reg_lambda should be greater equal to 0",
)
# algorithm_mode/metrics.py: the tunable metrics, one per XGBoost metric above.
TUNING_METRICS = tuple(f"validation:{m}" for m in MAXIMIZE_METRICS + MINIMIZE_METRICS)

USER_ERROR = "sagemaker_algorithm_toolkit.exceptions.UserError"
ALGORITHM_ERROR = "sagemaker_algorithm_toolkit.exceptions.AlgorithmError"


class AlgorithmFailure(Exception):
    """An exception the container's training raises; `failure_reason` is what SageMaker reports."""

    def __init__(self, message: str, exception_type: str = USER_ERROR):
        super().__init__(message)
        self.message = message
        self.exception_type = exception_type

    @property
    def failure_reason(self) -> str:
        # _trainer.train: "framework error: \n%s\n%s" % (traceback, str(e)); the traceback's
        # last line is "<module>.<class>: <message>" (frames left out locally).
        return f"AlgorithmError: framework error: \n{self.exception_type}: {self.message}\n{self.message}"


class NotEmulated(Exception):
    """A feature of the algorithm that local mode does not reproduce."""


def _user_error(message: str, caused_by: BaseException | None = None) -> AlgorithmFailure:
    # BaseToolkitError._format_exception_message appends the cause's class name.
    if caused_by is not None:
        message += f" (caused by {type(caused_by).__name__})"
    return AlgorithmFailure(message, USER_ERROR)


# --- the hyperparameter table ---------------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    """sagemaker_algorithm_toolkit's Interval: open or closed ends, printed like "[0, 1]"."""

    min_open: float | None = None
    min_closed: float | None = None
    max_open: float | None = None
    max_closed: float | None = None

    def __contains__(self, value) -> bool:
        return not ((self.min_open is not None and value <= self.min_open)
                    or (self.min_closed is not None and value < self.min_closed)
                    or (self.max_open is not None and value >= self.max_open)
                    or (self.max_closed is not None and value > self.max_closed))

    def __str__(self) -> str:
        low = (f"({self.min_open}, " if self.min_open is not None
               else f"[{self.min_closed}, " if self.min_closed is not None else "(-inf, ")
        high = (f"{self.max_open})" if self.max_open is not None
                else f"{self.max_closed}]" if self.max_closed is not None else "+inf)")
        return low + high


class _Categories:
    """A range given by a function over a list (the container's `range_validator`)."""

    def __init__(self, values: list, accepts: Callable[[list, Any], bool]):
        self.values, self.accepts = values, accepts

    def __contains__(self, value) -> bool:
        return self.accepts(self.values, value)

    def __str__(self) -> str:
        return str(self.values)


def _parse_tuple(value):
    # The container eval()s the text; literal_eval reads the same literals without running code.
    try:
        return ast.literal_eval(value) if isinstance(value, str) else value
    except SyntaxError as exc:
        raise AlgorithmFailure(f"invalid syntax ({exc.msg})", "SyntaxError") from None


def _parse_nested(value):
    return ast.literal_eval(value) if isinstance(value, str) else value


_PARSERS = {
    "integer": int, "continuous": float, "categorical": lambda v: v, "list": lambda v: v.split(","),
    "tuple": _parse_tuple, "nested": _parse_nested,
}


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    kind: str  # integer, continuous, categorical, list (comma-separated), tuple, nested (list of lists)
    range: Any
    required: bool = False
    depends_on: tuple[str, ...] = ()
    check: Callable[[Any, dict], None] | None = None

    def parse(self, text):
        return _PARSERS[self.kind](text)

    def validate_range(self, value) -> None:
        if self.kind in ("list", "tuple"):
            if any(v not in self.range for v in value):
                raise _user_error(f"Hyperparameter {self.name}: value {value} not in range {self.range}")
        elif self.kind == "nested":
            if any(element not in self.range for outer in value for element in outer):
                raise _user_error(f"Hyperparameter {self.name}: value {value} not in range {self.range}")
        elif value not in self.range:
            raise _user_error(f"Hyperparameter {self.name}: {value} is not in {self.range}")


# Dependency checks (algorithm_mode/hyperparameter_validation.py's *_validator functions).

def _check_updater(value: list, dependencies: dict) -> None:
    tree_plugins = ("grow_colmaker", "distcol", "grow_histmaker", "grow_skmaker", "sync", "refresh", "prune",
                    "grow_quantile_histmaker")
    tree_build_plugins = ("grow_colmaker", "distcol", "grow_histmaker", "grow_quantile_histmaker")
    if dependencies.get("booster") == "gblinear":
        if not (len(value) == 1 and value[0] in ("shotgun", "coord_descent")):
            # Upstream formats a generator object into this message; its readable intent:
            raise _user_error("Linear updater should be one of these options: 'shotgun', 'coord_descent'.")
    elif dependencies.get("process_type") == "update":
        if not all(x in ("refresh", "prune") for x in value):
            raise _user_error("process_type 'update' can only be used with updater 'refresh' and 'prune'")
    else:
        if not all(x in tree_plugins for x in value):
            raise _user_error(
                "Tree updater should be selected from these options: 'grow_colmaker', 'distcol', 'grow_histmaker', "
                "'grow_skmaker', 'grow_quantile_histmaker', 'sync', 'refresh', 'prune', 'shortgun', 'coord_descent'.")
        if sum(1 for x in value if x in tree_build_plugins) > 1:
            raise _user_error("Only one tree grow plugin can be selected. Choose one from thefollowing: "
                              "'grow_colmaker', 'distcol', 'grow_histmaker', 'grow_skmaker'")


def _check_objective(value: str, dependencies: dict) -> None:
    if value in ("multi:softmax", "multi:softprob") and dependencies.get("num_class") is None:
        raise _user_error("Require input for parameter 'num_class' for multi-classification")


def _check_eval_metric(value: list, dependencies: dict) -> None:
    if "objective" not in dependencies:
        # Upstream reads dependencies["objective"]: eval_metric without objective is a KeyError.
        raise AlgorithmFailure("'objective'", "KeyError")
    objective = dependencies["objective"]
    if "auc" in value and not any(objective.startswith(prefix) for prefix in ("binary:", "rank:")):
        raise _user_error("Metric 'auc' can only be applied for classification and ranking problems.")
    if "aft-nloglik" in value and objective != "survival:aft":
        raise _user_error("Metric 'aft-nloglik' can only be applied for 'survival:aft' objective.")


def _check_monotone_constraints(value, dependencies: dict) -> None:
    if value is not None and dependencies.get("tree_method") not in ("exact", "hist"):
        raise _user_error("monotone_constraints can be used only when the tree_method parameter is set to "
                          "either 'exact' or 'hist'.")


def _check_interaction_constraints(value, dependencies: dict) -> None:
    if value is not None and dependencies.get("tree_method") not in ("exact", "hist", "approx"):
        raise _user_error("interaction_constraints can be used only when the tree_method parameter is set to "
                          "either 'exact', 'hist' or 'approx'.")


def _eval_metric_accepts(supported: list, metric: str) -> bool:
    if "<function" in metric:
        raise _user_error(f"User defined evaluation metric {metric} is not supported yet.")
    if "@" in metric:
        name, threshold = metric.split("@")[0].strip(), metric.split("@")[1].strip()
        if name not in ("error", "ndcg", "map"):
            raise _user_error(f"Metric '{metric}' is not supported. Parameter 'eval_metric' with customized "
                              "threshold should be one of these options: 'error', 'ndcg', 'map'.")
        try:
            float(threshold)
        except ValueError:
            raise _user_error(f"Threshold value 't' in '{name}@t' expects float input.") from None
        return True
    return metric in supported


def _in(values: list, value) -> bool:
    return value in values


_UNIT = Interval(min_open=0, max_closed=1)
_OBJECTIVES = ["aft_loss_distribution", "binary:logistic", "binary:logitraw", "binary:hinge", "count:poisson",
               "multi:softmax", "multi:softprob", "rank:pairwise", "rank:ndcg", "rank:map", "reg:linear",
               "reg:squarederror", "reg:logistic", "reg:gamma", "reg:pseudohubererror", "reg:squaredlogerror",
               "reg:absoluteerror", "reg:tweedie", "survival:aft", "survival:cox"]
# The list as upstream declares it, duplicates included (it is printed in the error message).
_UPDATERS = ["grow_colmaker", "distcol", "grow_histmaker", "grow_skmaker", "sync", "refresh", "prune",
             "grow_colmaker", "distcol", "grow_histmaker", "grow_colmaker", "shotgun", "coord_descent", "refresh",
             "prune"]

# In upstream's declaration order (the order "Missing required hyperparameter" is checked in).
HYPERPARAMETERS: dict[str, Hyperparameter] = {h.name: h for h in (
    Hyperparameter("num_round", "integer", Interval(min_closed=1), required=True),
    Hyperparameter("csv_weights", "integer", Interval(min_closed=0, max_closed=1)),
    Hyperparameter("early_stopping_rounds", "integer", Interval(min_closed=1)),
    Hyperparameter("booster", "categorical", ["gbtree", "gblinear", "dart"]),
    Hyperparameter("verbosity", "integer", Interval(min_closed=0, max_closed=3)),
    Hyperparameter("nthread", "integer", Interval(min_closed=1)),
    Hyperparameter("eta", "continuous", Interval(min_closed=0, max_closed=1)),
    Hyperparameter("gamma", "continuous", Interval(min_closed=0)),
    Hyperparameter("max_depth", "integer", Interval(min_closed=0)),
    Hyperparameter("min_child_weight", "continuous", Interval(min_closed=0)),
    Hyperparameter("max_delta_step", "continuous", Interval(min_closed=0)),
    Hyperparameter("subsample", "continuous", _UNIT),
    Hyperparameter("colsample_bytree", "continuous", _UNIT),
    Hyperparameter("colsample_bylevel", "continuous", _UNIT),
    Hyperparameter("colsample_bynode", "continuous", _UNIT),
    Hyperparameter("lambda", "continuous", Interval(min_closed=0)),
    Hyperparameter("alpha", "continuous", Interval(min_closed=0)),
    Hyperparameter("tree_method", "categorical", _Categories(["auto", "exact", "approx", "hist", "gpu_hist"], _in)),
    Hyperparameter("sketch_eps", "continuous", Interval(min_open=0, max_open=1)),
    Hyperparameter("scale_pos_weight", "continuous", Interval(min_open=0)),
    Hyperparameter("updater", "list", _UPDATERS, depends_on=("booster", "process_type"), check=_check_updater),
    Hyperparameter("dsplit", "categorical", ["row", "col"]),
    Hyperparameter("refresh_leaf", "integer", Interval(min_closed=0, max_closed=1)),
    Hyperparameter("process_type", "categorical", ["default", "update"]),
    Hyperparameter("grow_policy", "categorical", ["depthwise", "lossguide"]),
    Hyperparameter("max_leaves", "integer", Interval(min_closed=0)),
    Hyperparameter("max_bin", "integer", Interval(min_closed=0)),
    Hyperparameter("predictor", "categorical", _Categories(["auto", "cpu_predictor", "gpu_predictor"], _in)),
    Hyperparameter("monotone_constraints", "tuple", [-1, 0, 1], depends_on=("tree_method",),
                   check=_check_monotone_constraints),
    Hyperparameter("interaction_constraints", "nested", Interval(min_closed=1), depends_on=("tree_method",),
                   check=_check_interaction_constraints),
    Hyperparameter("sample_type", "categorical", ["uniform", "weighted"]),
    Hyperparameter("normalize_type", "categorical", ["tree", "forest"]),
    Hyperparameter("rate_drop", "continuous", Interval(min_closed=0, max_closed=1)),
    Hyperparameter("one_drop", "integer", Interval(min_closed=0, max_closed=1)),
    Hyperparameter("skip_drop", "continuous", Interval(min_closed=0, max_closed=1)),
    Hyperparameter("lambda_bias", "continuous", Interval(min_closed=0, max_closed=1)),
    Hyperparameter("tweedie_variance_power", "continuous", Interval(min_open=1, max_open=2)),
    Hyperparameter("objective", "categorical", _OBJECTIVES, depends_on=("num_class",), check=_check_objective),
    Hyperparameter("num_class", "integer", Interval(min_closed=2)),
    Hyperparameter("base_score", "continuous", Interval(min_closed=0)),
    Hyperparameter("_kfold", "integer", Interval(min_closed=2)),
    Hyperparameter("_num_cv_round", "integer", Interval(min_closed=1)),
    Hyperparameter("_tuning_objective_metric", "categorical", list(TUNING_METRICS)),
    Hyperparameter("eval_metric", "list", _Categories(list(MAXIMIZE_METRICS + MINIMIZE_METRICS), _eval_metric_accepts),
                   depends_on=("objective",), check=_check_eval_metric),
    Hyperparameter("seed", "integer", Interval(min_open=-(2 ** 31), max_open=2 ** 31 - 1)),
    Hyperparameter("num_parallel_tree", "integer", Interval(min_closed=1)),
    Hyperparameter("save_model_on_termination", "categorical", ["true", "false"]),
    Hyperparameter("aft_loss_distribution", "categorical", ["normal", "logistic", "extreme"]),
    Hyperparameter("aft_loss_distribution_scale", "continuous", Interval(min_closed=0)),
    Hyperparameter("deterministic_histogram", "categorical", ["true", "false"]),
    Hyperparameter("sampling_method", "categorical", ["uniform", "gradient_based"]),
    Hyperparameter("prob_buffer_row", "integer", Interval(min_open=1.0)),
    Hyperparameter("use_dask_gpu_training", "categorical", ["true", "false"]),
)}
ALIASES = {"learning_rate": "eta", "min_split_loss": "gamma", "reg_lambda": "lambda", "reg_alpha": "alpha"}


def _dependency_order(names: list[str]) -> list[str]:
    """Hyperparameters._sort_dependencies: a depth-first stack, validated by popping its end."""
    visited = {name: False for name in names}
    stack: list[str] = []

    def visit(name: str) -> None:
        visited[name] = True
        for dependency in HYPERPARAMETERS[name].depends_on:
            if dependency in visited and not visited[dependency]:
                visit(dependency)
        stack.insert(0, name)

    for name in names:
        if not visited[name]:
            visit(name)
    return stack


def validate_hyperparameters(hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameters.validate: the typed hyperparameters, or the container's AlgorithmFailure."""
    given = {ALIASES.get(name, name): str(value) for name, value in hyperparameters.items()}
    for name, spec in HYPERPARAMETERS.items():
        if spec.required and name not in given:
            raise _user_error(f"Missing required hyperparameter: {name}")
    parsed: dict[str, Any] = {}
    for name, text in given.items():
        spec = HYPERPARAMETERS.get(name)
        if spec is None:
            raise _user_error(f"Extraneous hyperparameter found: {name}")
        try:
            parsed[name] = spec.parse(text)
        except ValueError as exc:
            raise _user_error(f"Hyperparameter {name}: could not parse value", caused_by=exc) from None
    for name, value in parsed.items():
        try:
            HYPERPARAMETERS[name].validate_range(value)
        except AlgorithmFailure:
            raise
        except Exception as exc:  # e.g. comparing a string with a number
            raise AlgorithmFailure(f"Hyperparameter {name}: unexpected failure when validating {value} "
                                   f"(caused by {type(exc).__name__})", ALGORITHM_ERROR) from None
    order = _dependency_order(list(parsed))
    validated: dict[str, Any] = {}
    while order:
        name = order.pop()
        spec = HYPERPARAMETERS[name]
        if spec.check is not None:
            spec.check(parsed[name], {d: validated[d] for d in spec.depends_on if d in validated})
        validated[name] = parsed[name]
    return validated


# --- the metrics the container computes itself (metrics/custom_metrics.py) --------------------
# Given to xgboost as `feval`, they see raw margins; the classification ones compare the
# labels with argmax (multiclass) or margin > 0 (binary), as scikit-learn 0.24 scores them.

def _class_labels(preds: np.ndarray) -> np.ndarray:
    if type(preds[0]) is np.ndarray:
        return np.argmax(preds, axis=-1)
    return (preds > 0.0).astype(int)


def _target_type(array: np.ndarray) -> str:
    """scikit-learn's type_of_target for a 1-D array of numbers."""
    if array.dtype.kind == "f" and np.any(array != array.astype(int)):
        return "continuous"
    return "binary" if len(np.unique(array)) <= 2 else "multiclass"


def _classification_target_kind(labels: np.ndarray, predicted: np.ndarray) -> str:
    """scikit-learn 0.24's _check_targets: 'binary' or 'multiclass', else its ValueError."""
    types = {_target_type(labels), _target_type(predicted)}
    if types == {"binary", "multiclass"}:
        types = {"multiclass"}
    if len(types) > 1:
        raise ValueError("Classification metrics can't handle a mix of {0} and {1} targets".format(
            _target_type(labels), _target_type(predicted)))
    kind = types.pop()
    if kind == "continuous":
        raise ValueError("continuous is not supported")
    if kind == "binary" and len(np.union1d(labels, predicted)) > 2:
        kind = "multiclass"
    return kind


def _per_class_counts(labels: np.ndarray, predicted: np.ndarray, classes) -> tuple[np.ndarray, ...]:
    tp = np.array([np.sum((labels == c) & (predicted == c)) for c in classes], dtype=np.int64)
    predicted_sum = np.array([np.sum(predicted == c) for c in classes], dtype=np.int64)
    true_sum = np.array([np.sum(labels == c) for c in classes], dtype=np.int64)
    return tp, predicted_sum, true_sum


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    # scikit-learn's _prf_divide with zero_division="warn": 0/0 is 0.
    safe = denominator.astype(np.float64)
    safe[safe == 0.0] = 1.0
    return numerator / safe


def _prf(labels: np.ndarray, predicted: np.ndarray, average: str, which: str) -> float:
    """precision_recall_fscore_support for one of precision, recall, f1."""
    kind = _classification_target_kind(labels, predicted)
    present = np.union1d(labels, predicted)
    if average == "binary":
        if kind == "multiclass":
            raise ValueError("Target is multiclass but average='binary'. Please choose another average "
                             "setting, one of [None, 'micro', 'macro', 'weighted'].")
        if 1 not in present and len(present) >= 2:
            raise ValueError(f"pos_label=1 is not a valid label: {present.tolist()!r}")
        classes = [1]
    else:
        classes = present.tolist()
    tp, predicted_sum, true_sum = _per_class_counts(labels, predicted, classes)
    if average == "micro":
        tp, predicted_sum, true_sum = (np.array([a.sum()]) for a in (tp, predicted_sum, true_sum))
    precision = _divide(tp, predicted_sum)
    recall = _divide(tp, true_sum)
    if which == "precision":
        scores = precision
    elif which == "recall":
        scores = recall
    else:
        denominator = precision + recall
        denominator[denominator == 0.0] = 1.0
        scores = 2 * precision * recall / denominator
    return float(np.average(scores))


def _classification(name: str, score: Callable[[np.ndarray, np.ndarray], float]):
    def metric(preds: np.ndarray, dtrain) -> tuple[str, float]:
        if preds.size == 0:
            return name, 0.0
        return name, score(dtrain.get_label(), _class_labels(preds))
    return metric


def _accuracy(labels, predicted) -> float:
    _classification_target_kind(labels, predicted)
    return float(np.average(labels == predicted))


def _balanced_accuracy(labels, predicted) -> float:
    _classification_target_kind(labels, predicted)
    tp, _, true_sum = _per_class_counts(labels, predicted, np.union1d(labels, predicted).tolist())
    with np.errstate(divide="ignore", invalid="ignore"):
        per_class = tp / true_sum
    return float(np.mean(per_class[~np.isnan(per_class)]))


def _regression_arrays(preds, dtrain):
    labels = dtrain.get_label()
    predicted = np.asarray(preds).reshape(len(labels), -1)
    if predicted.shape[1] != 1:
        raise ValueError(f"y_true and y_pred have different number of output (1!={predicted.shape[1]})")
    return labels.reshape(-1, 1), predicted


def _mse(preds, dtrain):
    labels, predicted = _regression_arrays(preds, dtrain)
    return "mse", np.average(np.average((labels - predicted) ** 2, axis=0))


def _rmse(preds, dtrain):
    labels, predicted = _regression_arrays(preds, dtrain)
    return "rmse", np.average(np.sqrt(np.average((labels - predicted) ** 2, axis=0)))


def _mae(preds, dtrain):
    labels, predicted = _regression_arrays(preds, dtrain)
    return "mae", np.average(np.average(np.abs(predicted - labels), axis=0))


def _r2(preds, dtrain):
    labels, predicted = _regression_arrays(preds, dtrain)
    if len(labels) < 2:
        return "r2", math.nan
    numerator = ((labels - predicted) ** 2).sum(axis=0, dtype=np.float64)
    denominator = ((labels - np.average(labels, axis=0)) ** 2).sum(axis=0, dtype=np.float64)
    scores = np.ones(labels.shape[1])
    valid = (denominator != 0) & (numerator != 0)
    scores[valid] = 1 - numerator[valid] / denominator[valid]
    scores[(numerator != 0) & (denominator == 0)] = 0.0
    return "r2", np.average(scores)


CONTAINER_METRICS: dict[str, Callable] = {
    "accuracy": _classification("accuracy", _accuracy),
    "balanced_accuracy": _classification("balanced_accuracy", _balanced_accuracy),
    "f1": _classification("f1", lambda y, p: _prf(y, p, "macro", "f1")),
    "f1_binary": _classification("f1_binary", lambda y, p: _prf(y, p, "binary", "f1")),
    "f1_macro": _classification("f1_macro", lambda y, p: _prf(y, p, "macro", "f1")),
    "mse": _mse,
    "rmse": _rmse,
    "mae": _mae,
    "precision": _classification("precision", lambda y, p: _prf(y, p, "binary", "precision")),
    "precision_macro": _classification("precision_macro", lambda y, p: _prf(y, p, "macro", "precision")),
    "precision_micro": _classification("precision_micro", lambda y, p: _prf(y, p, "micro", "precision")),
    "r2": _r2,
    "recall": _classification("recall", lambda y, p: _prf(y, p, "binary", "recall")),
    "recall_macro": _classification("recall_macro", lambda y, p: _prf(y, p, "macro", "recall")),
    "recall_micro": _classification("recall_micro", lambda y, p: _prf(y, p, "micro", "recall")),
}


# --- training ------------------------------------------------------------------------------

@dataclass
class TrainingPlan:
    """What train_job hands to xgb.train after popping the container's own keys."""

    params: dict[str, Any]
    num_round: int
    custom_metrics: list[str]
    early_stopping_rounds: int | None
    early_stopping_metric: str | None
    csv_weights: int


def training_plan(validated: Mapping[str, Any]) -> TrainingPlan:
    """sagemaker_train + train_job (train.py) and get_eval_metrics_and_feval (train_utils.py)."""
    params = dict(validated)
    if params.get("updater"):
        params["updater"] = ",".join(params["updater"])
    if params.pop("use_dask_gpu_training", "false") == "true":
        raise NotEmulated("use_dask_gpu_training=true (Dask GPU training) is not emulated locally")
    if "_kfold" in params:
        raise NotEmulated("_kfold (cross-validation with one model per fold) is not emulated locally")
    num_round = params.pop("num_round")
    params.pop("save_model_on_termination", None)
    tuning_param = params.pop("_tuning_objective_metric", None)
    eval_metric = params.get("eval_metric")
    tuning = tuning_param.split(":")[1].split(",") if tuning_param is not None else None
    if tuning is not None and eval_metric is not None:
        union = sorted(set(tuning) | set(eval_metric))
    else:
        union = tuning if tuning is not None else eval_metric
    custom: list[str] = []
    cleaned = union
    if union is not None:
        custom = [m for m in union if m in CONTAINER_METRICS]
        if custom:
            # Upstream takes list(set(...) - set(...)): an arbitrary order; sorted here.
            cleaned = sorted(set(union) - set(custom))
    if cleaned:
        params["eval_metric"] = cleaned
    else:
        params.pop("eval_metric", None)
    early_stopping_rounds = params.pop("early_stopping_rounds", None)
    metric = None
    if early_stopping_rounds:
        metric = tuning[-1] if tuning else (eval_metric[-1] if eval_metric else None)
    return TrainingPlan(params=params, num_round=num_round, custom_metrics=custom,
                        early_stopping_rounds=early_stopping_rounds, early_stopping_metric=metric,
                        csv_weights=int(validated.get("csv_weights", 0)))


def _feval(names: list[str]):
    def custom_feval(preds, dtrain):
        return [CONTAINER_METRICS[name](preds, dtrain) for name in names]
    return custom_feval


def train(plan: TrainingPlan, train_matrix, validation_matrix=None, nthread: int | None = None):
    """xgb.train as train_job calls it: (booster, history). The booster holds the rounds up to the
    best one when early stopping ran (EarlyStopping(save_best=True) in callback.get_callbacks)."""
    import xgboost as xgb

    params = dict(plan.params)
    if nthread is not None:
        params.setdefault("nthread", nthread)
    watchlist = [(train_matrix, "train")]
    if validation_matrix is not None:
        watchlist.append((validation_matrix, "validation"))
    callbacks = []
    if validation_matrix is not None and plan.early_stopping_metric and plan.early_stopping_rounds:
        callbacks.append(xgb.callback.EarlyStopping(
            rounds=plan.early_stopping_rounds, data_name="validation", metric_name=plan.early_stopping_metric,
            maximize=plan.early_stopping_metric in MAXIMIZE_METRICS, save_best=True))
    history: dict = {}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="`feval` is deprecated")
            booster = xgb.train(params, train_matrix, num_boost_round=plan.num_round, evals=watchlist,
                                feval=_feval(plan.custom_metrics) if plan.custom_metrics else None,
                                callbacks=callbacks, evals_result=history, verbose_eval=False)
    except Exception as exc:
        # train_job's except: a known customer error is a UserError, anything else an AlgorithmError.
        if any(known in str(exc) for known in CUSTOMER_ERRORS):
            raise AlgorithmFailure(str(exc), USER_ERROR) from exc
        raise AlgorithmFailure(f"XGB train call failed with exception:\n {exc}", ALGORITHM_ERROR) from exc
    return booster, history


def final_metrics(history: Mapping[str, Mapping[str, list]]) -> dict[str, float]:
    """FinalMetricDataList: the last value logged for each channel and metric.

    EvaluationMonitor logs every round as "[i]\\ttrain-merror:0.01234\\tvalidation-merror:..."
    (five decimals) and SageMaker keeps the last value its metric regex matched; with early
    stopping that is the last round run, not the best one."""
    return {f"{channel}:{metric}": float(f"{values[-1]:.5f}")
            for channel, per_metric in history.items() for metric, values in per_metric.items()}
