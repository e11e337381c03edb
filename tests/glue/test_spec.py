"""The dataset spec format: what it accepts, the defaults it fills in, and a clear message for
every mistake (all problems at once). No Spark: the spec is checked before any data is read."""
from __future__ import annotations

import copy
import json

import pytest

from dataset_spec import InvalidSpec, parse_spec
from dataset_spec.serving import ServingInputs, serving_inputs
from localmode import REPO_ROOT
from preprocessing.options import load_spec

BASE = {
    "name": "shop",
    "columns": [
        {"name": "colour", "type": "categorical", "values": ["red", "blue"]},
        {"name": "weight", "type": "numeric"},
        {"name": "bought", "type": "categorical", "values": ["no", "yes"]},
    ],
    "label": "bought",
}


def spec_with(**changes) -> dict:
    spec = copy.deepcopy(BASE)
    spec.update(changes)
    return spec


def problems(spec) -> str:
    with pytest.raises(InvalidSpec) as caught:
        parse_spec(spec)
    return str(caught.value)


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "datasets").glob("*.json")), ids=lambda p: p.stem)
def test_every_committed_spec_is_valid_and_named_after_its_file(path):
    spec = json.loads(path.read_text(encoding="utf-8"))
    assert parse_spec(spec).name == spec["name"] == path.stem


def test_defaults_are_written_out_in_the_spec_as_used():
    layout = parse_spec(BASE)
    assert layout.spec == {
        "name": "shop", "header": "auto", "missing_values": ["NA", "N/A", "null", "?"],
        "columns": [
            {"name": "colour", "type": "categorical", "values": ["red", "blue"], "allow_missing": False},
            {"name": "weight", "type": "numeric", "impute": "mean"},
            {"name": "bought", "type": "categorical", "values": ["no", "yes"]},
        ],
        "label": "bought", "binary_threshold": 0.5,
        "quality_gate": {"metric": "accuracy", "threshold": None, "higher_is_better": True},
    }
    assert [c.name for c in layout.features] == ["colour", "weight"] and layout.label.name == "bought"
    assert layout.problem_type(["no", "yes"]) == "binary"
    # The spec as used is itself a valid spec that reads the same.
    assert parse_spec(layout.spec).spec == layout.spec


def test_a_gate_without_a_metric_gets_the_default_the_qa_step_would_use():
    """The spec check writes the default metric before the data says how many classes a learned label has: the
    QA step's defaults for binary and multiclass must be the one it writes (dataset_spec.gate)."""
    from dataset_spec import DEFAULT_GATE_METRIC

    learned = spec_with(columns=BASE["columns"][:2] + [{"name": "bought", "type": "categorical"}])
    assert parse_spec(learned).quality_gate["metric"] == DEFAULT_GATE_METRIC["binary"] == DEFAULT_GATE_METRIC["multiclass"]


def test_regression_defaults_to_r2_and_a_label_may_be_any_column():
    spec = spec_with(columns=[{"name": "price", "type": "numeric"}] + BASE["columns"], label="price")
    layout = parse_spec(spec)
    assert layout.quality_gate == {"metric": "r2", "threshold": None, "higher_is_better": True}
    assert [c.name for c in layout.features] == ["colour", "weight", "bought"]
    assert layout.problem_type(None) == "regression" and "binary_threshold" not in layout.spec


@pytest.mark.parametrize("change, expected", [
    ({"colour": 1}, "unknown key(s) colour (allowed: name, description, header, missing_values, columns, label, "
                    "binary_threshold, quality_gate, source)"),
    ({"name": "My Shop"}, "name must be 1-32 lower-case letters, digits or inner hyphens"),
    ({"header": True}, "header must be one of auto, yes, no, got True"),
    ({"label": "price"}, "label 'price' is not one of the columns (colour, weight, bought)"),
    ({"missing_values": "NA"}, "spec: missing_values must be a list of strings"),
    ({"binary_threshold": 1.5}, "binary_threshold must be a number between 0 and 1 (exclusive), got 1.5"),
    ({"quality_gate": {"metric": "rmse"}}, "quality_gate.metric 'rmse' measures regression, but the label 'bought' "
                                           "is categorical (classification): use accuracy, macro_f1 or roc_auc"),
    ({"quality_gate": {"metric": "accuracy", "higher_is_better": False}},
     "quality_gate.higher_is_better must be true for accuracy"),
    ({"quality_gate": {"metric": "accuracy", "threshold": 97}},
     "quality_gate.threshold for accuracy must be between 0 and 1, got 97"),
    ({"quality_gate": {"metric": "f1"}}, "quality_gate.metric must be one of accuracy, macro_f1, roc_auc, rmse, mae, "
                                         "r2, got 'f1'"),
    ({"quality_gate": {"metric": "accuracy", "min": 0.9}}, "quality_gate: unknown key(s) min"),
    ({"columns": []}, "columns must list the file's columns in order"),
], ids=lambda v: str(v)[:40])
def test_spec_mistakes_are_named(change, expected):
    assert expected in problems(spec_with(**change))


@pytest.mark.parametrize("column, expected", [
    ({"name": "colour", "type": "text"}, "column 'colour': type must be one of categorical, numeric, date, ignore, got 'text'"),
    ({"name": "colour", "type": "categorical", "values": ["red", "red"]},
     "column 'colour': values must be a non-empty list without duplicates"),
    ({"name": "colour", "type": "categorical", "values": ["red", "NA"]},
     "column 'colour': values ['NA'] are also missing-value markers of this column"),
    ({"name": "colour", "type": "categorical", "values": ["red"], "max_categories": 3},
     "column 'colour': max_categories applies to learned values only"),
    ({"name": "colour", "type": "categorical", "max_categories": 0},
     "column 'colour': max_categories must be a positive integer, got 0"),
    ({"name": "colour", "type": "categorical", "impute": "mean"},
     "column 'colour': unknown key(s) impute for a categorical column (allowed: name, type, values, max_categories, "
     "allow_missing, missing_values, description)"),
    ({"name": "colour", "type": "numeric", "impute": "mode"},
     "column 'colour': impute must be one of mean, median, got 'mode'"),
    ({"name": "colour", "type": "numeric", "values": ["1"]}, "column 'colour': unknown key(s) values for a numeric column"),
    ({"name": "col.our", "type": "numeric"}, "columns[0]: name must be a non-empty string without commas, quotes, dots"),
    ({"name": "bought", "type": "numeric"}, "column names ['bought'] are not unique"),
    ({"name": "features", "type": "numeric"}, "column names ['features'] clash with the job's own columns"),
    ({"name": "a__b", "type": "numeric"}, "column names ['a__b'] clash with the job's own columns"),
], ids=lambda v: str(v)[:40])
def test_column_mistakes_are_named(column, expected):
    spec = copy.deepcopy(BASE)
    spec["columns"][0] = column
    assert expected in problems(spec)


@pytest.mark.parametrize("label, extra, expected", [
    ({"name": "bought", "type": "numeric", "impute": "mean"}, {},
     "label column 'bought': impute does not apply, every row needs a label"),
    ({"name": "bought", "type": "categorical", "allow_missing": True}, {},
     "label column 'bought': allow_missing does not apply, every row needs a label"),
    ({"name": "bought", "type": "categorical", "values": ["yes"]}, {},
     "label column 'bought' lists one value: a classifier needs at least two"),
    ({"name": "bought", "type": "ignore"}, {}, "label column 'bought' is of type ignore"),
    ({"name": "bought", "type": "numeric"}, {"binary_threshold": 0.3},
     "binary_threshold applies to a two-class label; 'bought' is numeric (regression)"),
    ({"name": "bought", "type": "categorical", "values": ["a", "b", "c"]}, {"binary_threshold": 0.3},
     "binary_threshold applies to a two-class label; 'bought' lists 3 classes"),
    ({"name": "bought", "type": "categorical", "values": ["a", "b", "c"]}, {"quality_gate": {"metric": "roc_auc"}},
     "quality_gate.metric 'roc_auc' needs two classes; the label 'bought' lists 3"),
    ({"name": "bought", "type": "numeric"}, {"quality_gate": {"metric": "accuracy"}},
     "quality_gate.metric 'accuracy' measures classification, but the label 'bought' is numeric (regression)"),
    ({"name": "bought", "type": "numeric"}, {"quality_gate": {"metric": "rmse", "higher_is_better": True}},
     "quality_gate.higher_is_better must be false for rmse"),
    ({"name": "bought", "type": "numeric"}, {"quality_gate": {"metric": "mae", "threshold": -1}},
     "quality_gate.threshold for mae must not be negative, got -1"),
], ids=lambda v: str(v)[:40])
def test_label_mistakes_are_named(label, extra, expected):
    spec = copy.deepcopy(BASE)
    spec["columns"][2] = label
    spec.update(extra)
    assert expected in problems(spec)


def test_every_problem_is_reported_at_once():
    spec = spec_with(header="maybe", label="nope", extra=1)
    message = problems(spec)
    assert message.startswith("dataset spec 'shop' is invalid: ")
    for part in ("unknown key(s) extra", "header must be one of", "label 'nope' is not one of the columns"):
        assert part in message


def test_the_previous_format_gets_a_pointer_to_the_new_one():
    old = {"name": "car", "features": [{"name": "a", "values": ["x"]}], "label": {"name": "class", "values": ["y", "z"]}}
    assert "previous format (features + label {name, values})" in problems(old)


def test_only_features_are_ignored_columns_and_at_least_one_feature_remains():
    spec = spec_with(columns=[{"name": "id", "type": "ignore"}, BASE["columns"][2]])
    assert "no feature columns: every column but the label is ignored" in problems(spec)


def test_a_spec_file_that_is_not_json_is_named(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{", encoding="utf-8")
    with pytest.raises(InvalidSpec, match=r"broken.json is not valid JSON"):
        load_spec(str(path))


def _environment_value_max() -> int:
    """SageMaker's limit on one container environment value, from botocore's SageMaker model
    (shape EnvironmentValue), not from the project's own constant."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.shape_for("EnvironmentValue").metadata["max"]


def _schema_length(feature_names: list[str]) -> int:
    """What create_model would put in SAGEMAKER_SPARKML_SCHEMA for these features (compact JSON)."""
    document = {"input": [{"name": n, "type": "string"} for n in feature_names],
                "output": {"name": "features", "type": "double", "struct": "vector"}}
    return len(json.dumps(document, separators=(",", ":")))


def test_a_spec_too_wide_for_its_names_in_the_environment_is_served_under_short_names_then_by_json():
    # SparkML Serving reads a CSV request's schema only from SAGEMAKER_SPARKML_SCHEMA, by position
    # (aws/sagemaker-sparkml-serving-container, DataConversionHelper.convertCsvToObjectList), and
    # CreateModel refuses an environment value over the limit. The 30 measurements of scikit-learn's
    # breast-cancer set once made the spec check refuse the table; now the bundle names them c1..c30.
    limit = _environment_value_max()
    assert limit == 1024
    from sklearn.datasets import load_breast_cancer

    measurements = [str(n).replace(" ", "_") for n in load_breast_cancer().feature_names]
    assert _schema_length(measurements) > limit
    wide = spec_with(columns=[{"name": n, "type": "numeric"} for n in measurements]
                     + [{"name": "diagnosis", "type": "categorical", "values": ["benign", "malignant"]}],
                     label="diagnosis")
    layout = parse_spec(wide)
    served = serving_inputs([c.name for c in layout.features])
    assert served == ServingInputs(tuple(f"c{i}" for i in range(1, 31)), "text/csv")
    assert _schema_length(list(served.names)) <= limit

    # Ignored columns are not in the schema: with 20 of them ignored the users' names fit.
    narrowed = copy.deepcopy(wide)
    for column in narrowed["columns"][10:30]:
        column["type"] = "ignore"
    assert serving_inputs([c.name for c in parse_spec(narrowed).features]).names == tuple(measurements[:10])

    # Past what short names fit, requests carry the schema: application/json.
    hundred = [f"x{i}" for i in range(100)]
    assert serving_inputs(hundred) == ServingInputs(tuple(f"c{i}" for i in range(1, 101)), "application/json")
    # The last width served by CSV, and the first that is not.
    widths = [n for n in range(1, 60) if serving_inputs([f"long_column_name_{i}" for i in range(n)]).content_type
              == "text/csv"]
    assert widths == list(range(1, max(widths) + 1)) and max(widths) == 30

    # The boundary: names that make the schema exactly `limit` characters are kept, one more is not.
    fixed = _schema_length(["colour", ""])
    at_limit = ["colour", "w" * (limit - fixed)]
    assert _schema_length(at_limit) == limit
    assert serving_inputs(at_limit).names == tuple(at_limit)
    assert serving_inputs([at_limit[0], at_limit[1] + "w"]) == ServingInputs(("c1", "c2"), "text/csv")
