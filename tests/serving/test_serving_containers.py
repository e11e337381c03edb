"""The container contracts: SparkML Serving 3.3 and XGBoost 1.7-1 as their servers answer
(status, body, Content-Type), and SageMaker's chaining of them."""
from __future__ import annotations

import json
import shutil

import pytest

from localmode.serving.containers import InferencePipeline, SparkMLServingContainer, XGBoostContainer
from localmode.serving.mleap import BundleError, MleapBundle

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def preprocess(containers):
    return containers[0]


@pytest.fixture(scope="module")
def xgboost_container(containers):
    return containers[1]


@pytest.fixture(scope="module")
def postprocess(containers):
    return containers[2]


@pytest.fixture(scope="module")
def row(serving_artifacts):
    return serving_artifacts.test_rows[0][:-1]


def features_of(response) -> list[float]:
    assert response.status == 200, response
    return [float(v) for v in response.body.decode().split(",")]


# --- SparkML Serving: inputs -------------------------------------------------------------

def test_csv_answers_the_feature_vector_densified_and_comma_joined(preprocess, row, serving_artifacts):
    response = preprocess.invoke(",".join(row).encode(), "text/csv", None)
    assert response.content_type == "text/csv"
    vector = features_of(response)
    assert len(vector) == serving_artifacts.manifest["feature_width"]
    assert sorted(set(vector)) == [0.0, 1.0] and sum(vector) == len(row)
    assert response.body.decode().startswith(("0.0,", "1.0,"))  # Java's Double.toString


def test_csv_with_several_records_transforms_only_the_first(preprocess, pipeline, serving_artifacts):
    # DataConversionHelper.convertCsvToObjectList (aws/sagemaker-sparkml-serving-container,
    # src/main/java/com/amazonaws/sagemaker/helper/DataConversionHelper.java lines 72-80) converts
    # `parser.getRecords().get(0)` only; the real app answered so when run.
    first, second = serving_artifacts.test_lines[:2]
    alone = preprocess.invoke(first.encode(), "text/csv", None)
    assert alone.body != preprocess.invoke(second.encode(), "text/csv", None).body
    assert preprocess.invoke(f"{first}\r\n{second}\n\n".encode(), "text/csv", None) == alone
    assert pipeline.predict_csv_line(f"{first}\n{second}") == pipeline.predict_csv_line(first)
    # getRecords() parses every record first: a broken later record still fails the request.
    broken = preprocess.invoke(f'{first}\nx,"unclosed'.encode(), "text/csv", None)
    assert (broken.status, broken.body) == (400, b"(startline 2) EOF reached before encapsulated token finished")
    assert preprocess.invoke(f'{first}\nx,"a"b'.encode(), "text/csv", None).body == \
        b"(line 2) invalid char between encapsulated token and delimiter"
    # A body of line breaks only has no record: get(0) on an empty ArrayList (Java 8's message).
    assert preprocess.invoke(b"\n\n", "text/csv", None)[:2] == (400, b"Index: 0, Size: 0")


def test_quoted_csv_fields_are_unquoted(preprocess, row):
    quoted = ",".join(f'"{value}"' for value in row)
    assert preprocess.invoke(quoted.encode(), "text/csv", None) == preprocess.invoke(",".join(row).encode(), "text/csv", None)


def test_json_input_gives_the_same_vector_as_csv(preprocess, row):
    expected = preprocess.invoke(",".join(row).encode(), "text/csv", None)
    as_json = preprocess.invoke(json.dumps({"data": row}).encode(), "application/json", None)
    assert as_json == expected


def test_jsonlines_answers_every_record_as_a_java_list_of_lists(preprocess, postprocess, serving_artifacts):
    # ServingController.processInputDataForJsonLines (ServingController.java lines 237-285): each
    # record is transformed alone and the answers are joined as Java prints a List<List<String>>,
    # under the first answer's headers; the real app answered `[[1.0,0.0,...]]` as text/csv.
    first, second = (row[:-1] for row in serving_artifacts.test_rows[:2])
    csv_first, csv_second = (preprocess.invoke(",".join(r).encode(), "text/csv", None).body.decode()
                             for r in (first, second))
    one = preprocess.invoke(json.dumps({"data": first}).encode(), "application/jsonlines", None)
    assert (one.status, one.body.decode(), one.content_type) == (200, f"[[{csv_first}]]", "text/csv")
    lines = f'{json.dumps({"data": first})}\r\n{json.dumps({"data": second})}\n'
    two = preprocess.invoke(lines.encode(), "application/jsonlines", "application/jsonlines")
    assert two.content_type == "application/jsonlines"
    assert two.body.decode() == f'[[{{"features":[{csv_first}]}}], [{{"features":[{csv_second}]}}]]'
    # `{"data": [[...], [...]]}` holds several records (SageMakerRequestListObject).
    nested = preprocess.invoke(json.dumps({"data": [first, second]}).encode(), "application/jsonlines", None)
    assert nested.body.decode() == f"[[{csv_first}], [{csv_second}]]"
    # A basic output is the bare value in the same frame.
    labels = serving_artifacts.manifest["label_values"]
    answer = postprocess.invoke(b'{"data":[1.0]}\n{"data":[[2.0],[0.0]]}', "application/jsonlines", None)
    assert answer.body.decode() == f"[[{labels[1]}], [{labels[2]}], [{labels[0]}]]"
    # No record at all: responseList.get(0) on an empty list.
    assert preprocess.invoke(b'{"data":[]}', "application/jsonlines", None)[:2] == (400, b"Index: 0, Size: 0")


def test_the_first_json_lines_schema_wins_over_the_environment(preprocess, row, serving_artifacts):
    # ServingController.java lines 243-245: the first line is read for a "schema" first.
    schema = json.loads(json.dumps(serving_artifacts.preprocess_schema))
    schema["input"] = list(reversed(schema["input"]))
    body = json.dumps({"schema": schema, "data": list(reversed(row))}) + "\n" + json.dumps({"data": list(reversed(row))})
    csv_line = preprocess.invoke(",".join(row).encode(), "text/csv", None).body.decode()
    assert preprocess.invoke(body.encode(), "application/jsonlines", None).body.decode() == \
        f"[[{csv_line}], [{csv_line}]]"


def test_a_schema_in_the_json_body_wins_over_the_environment(preprocess, row, serving_artifacts):
    schema = json.loads(json.dumps(serving_artifacts.preprocess_schema))
    schema["input"] = list(reversed(schema["input"]))
    reordered = preprocess.invoke(json.dumps({"schema": schema, "data": list(reversed(row))}).encode(),
                                  "application/json", None)
    assert reordered.body == preprocess.invoke(",".join(row).encode(), "text/csv", None).body
    # Reversed data with the environment's schema is a different (valid, unseen-value) row.
    assert preprocess.invoke(json.dumps({"data": list(reversed(row))}).encode(), "application/json", None).body \
        != reordered.body


def test_without_any_schema_the_answer_says_so(serving_artifacts, row):
    container = SparkMLServingContainer(serving_artifacts.preprocess_dir, {})
    response = container.invoke(",".join(row).encode(), "text/csv", None)
    assert (response.status, response.body) == (
        400, b"Input schema has to be provided either via environment variable or via the request")
    with_schema = container.invoke(json.dumps({"schema": serving_artifacts.preprocess_schema, "data": row}).encode(),
                                   "application/json", None)
    assert with_schema.status == 200


# --- SparkML Serving: outputs by Accept ------------------------------------------------------

def test_accept_jsonlines_gives_features_and_data_text_gives_source(preprocess, row):
    csv_line = preprocess.invoke(",".join(row).encode(), "text/csv", None).body.decode()
    standard = preprocess.invoke(",".join(row).encode(), "text/csv", "application/jsonlines")
    assert standard.content_type == "application/jsonlines"
    assert standard.body.decode() == '{"features":[' + csv_line + "]}"
    text = preprocess.invoke(",".join(row).encode(), "text/csv", "application/jsonlines;data=text")
    assert json.loads(text.body) == {"source": csv_line.replace(",", " ")}


def test_accept_defaults_to_the_environment_then_csv(serving_artifacts, row):
    env = dict(serving_artifacts.environments()[0], SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="application/jsonlines")
    container = SparkMLServingContainer(serving_artifacts.preprocess_dir, env)
    for accept in (None, "", "*/*"):
        assert container.invoke(",".join(row).encode(), "text/csv", accept).content_type == "application/jsonlines"
    assert container.invoke(",".join(row).encode(), "text/csv", "text/csv").content_type == "text/csv"
    del env["SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"]
    plain = SparkMLServingContainer(serving_artifacts.preprocess_dir, env)
    assert plain.invoke(",".join(row).encode(), "text/csv", None).content_type == "text/csv"


def test_an_accept_the_container_does_not_produce_is_a_400_with_its_message(preprocess, row):
    response = preprocess.invoke(",".join(row).encode(), "text/csv", "application/json")
    assert (response.status, response.body) == (
        400, b"Accept value passed via request or environment variable is not valid")


def test_basic_output_is_the_plain_value_for_csv_and_jsonlines(postprocess, serving_artifacts):
    labels = serving_artifacts.manifest["label_values"]
    assert postprocess.invoke(b"1.0\n", "text/csv", None) == (200, labels[1].encode(), "text/csv", None)
    lines = postprocess.invoke(b"2.0", "text/csv", "application/jsonlines")
    assert (lines.body, lines.content_type) == (labels[2].encode(), "application/jsonlines")


# --- SparkML Serving: bad input --------------------------------------------------------------

def test_an_unseen_category_still_gets_a_prediction(pipeline, row, serving_artifacts):
    labels = serving_artifacts.manifest["label_values"]
    for i in range(len(row)):
        unseen = row[:i] + ["never-seen"] + row[i + 1:]
        assert pipeline.predict_csv_line(",".join(unseen)) in labels
    assert pipeline.predict_csv_line(",".join([""] * len(row))) in labels


def test_too_few_fields_is_a_400_with_the_containers_message_and_a_plain_diagnosis(preprocess, row):
    response = preprocess.invoke(",".join(row[:-1]).encode(), "text/csv", None)
    # SparkML Serving on Java 8: CSVRecord.get(5) -> ArrayIndexOutOfBoundsException("5").
    assert (response.status, response.body) == (400, str(len(row) - 1).encode())
    assert f"has {len(row) - 1} field(s) but the schema expects {len(row)}" in response.diagnosis
    as_json = preprocess.invoke(json.dumps({"data": row[:-2]}).encode(), "application/json", None)
    assert (as_json.status, as_json.body) == (400, f"Index: {len(row) - 2}, Size: {len(row) - 2}".encode())
    assert "expects" in as_json.diagnosis


def test_extra_fields_are_ignored_as_the_container_does(preprocess, row):
    assert preprocess.invoke(",".join(row + ["extra"]).encode(), "text/csv", None) == \
        preprocess.invoke(",".join(row).encode(), "text/csv", None)


def test_a_value_that_is_not_a_number_for_a_double_column_is_a_400(postprocess):
    response = postprocess.invoke(b"abc", "text/csv", None)
    assert (response.status, response.body) == (400, b'For input string: "abc"')
    out_of_range = postprocess.invoke(b"7.0", "text/csv", None)
    assert (out_of_range.status, out_of_range.body) == (400, b"key not found: 7")


def test_media_types_and_bodies_rejected_before_the_controller(preprocess, row):
    unsupported = preprocess.invoke(b"<x/>", "application/xml", None)
    assert unsupported.status == 415 and json.loads(unsupported.body)["error"] == "Unsupported Media Type"
    assert preprocess.invoke(b"", "text/csv", None).status == 400
    not_an_object = preprocess.invoke(b"[1, 2]", "application/json", None)
    assert not_an_object.status == 400 and json.loads(not_an_object.body)["status"] == 400
    unknown_field = preprocess.invoke(json.dumps({"data": row, "rows": 1}).encode(), "application/json", None)
    assert unknown_field.status == 400 and "rows" in unknown_field.diagnosis


def test_an_unknown_op_fails_at_load_naming_it(serving_artifacts, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(serving_artifacts.preprocess_dir, bundle)
    node = next((bundle / "root").glob("VectorAssembler*.node"))
    model = json.loads((node / "model.json").read_text())
    model["op"] = "pca"
    (node / "model.json").write_text(json.dumps(model))
    with pytest.raises(BundleError, match=r"MLeap op 'pca' \(node VectorAssembler_\w+\) is not supported"):
        MleapBundle(bundle)


# --- XGBoost 1.7-1 --------------------------------------------------------------------------

def test_xgboost_answers_the_class_index_as_a_float_per_line(xgboost_container, preprocess, row, serving_artifacts):
    # aws/sagemaker-xgboost-container, branch 1.7-1, algorithm_mode/serve.py lines 240-249:
    # text/csv through sagemaker_containers' encoders, application/json through
    # serve_utils.encode_predictions_as_json (serve_utils.py lines 511-523), both sent as
    # flask.Response(mimetype=accept), which adds "; charset=utf-8" to text/* types.
    features = preprocess.invoke(",".join(row).encode(), "text/csv", None).body
    response = xgboost_container.invoke(features, "text/csv", None)
    assert response.content_type == "text/csv; charset=utf-8"
    value = response.body.decode()
    assert value.endswith("\n") and float(value) in range(serving_artifacts.manifest["num_class"])
    two = xgboost_container.invoke(features + b"\n" + features, "text/csv", None)
    assert two.body.decode() == value * 2
    as_json = xgboost_container.invoke(features + b"\n" + features, "text/csv", "application/json")
    assert as_json.content_type == "application/json"
    score = value.strip()
    assert as_json.body.decode() == f'{{"predictions": [{{"score": {score}}}, {{"score": {score}}}]}}'


def test_xgboost_errors_are_the_containers(xgboost_container, preprocess, row):
    features = preprocess.invoke(",".join(row).encode(), "text/csv", None).body
    wrong_type = xgboost_container.invoke(features, "application/json", None)
    assert wrong_type.status == 415 and wrong_type.body.startswith(b"application/json is not an accepted ContentType: csv")
    too_wide = xgboost_container.invoke(features + b",1.0", "text/csv", None)
    assert too_wide.status == 400 and too_wide.body.startswith(b"Unable to evaluate payload provided:")
    assert "trained on" in too_wide.diagnosis
    not_numbers = xgboost_container.invoke(b"a,b,c", "text/csv", None)
    assert not_numbers.status == 415 and b"Loading csv data failed" in not_numbers.body
    # encoder.csv_to_dmatrix builds the DMatrix inside parse_content_data's try (serve_utils.py
    # lines 122-130), so xgboost's refusal of inf is a 415 like any other unreadable CSV.
    infinite = xgboost_container.invoke(b"inf," + features.split(b",", 1)[1], "text/csv", None)
    assert infinite.status == 415 and b"Loading csv data failed" in infinite.body and b"inf" in infinite.body
    assert xgboost_container.invoke(b"", "text/csv", None).status == 204
    refused = xgboost_container.invoke(features, "text/csv", "text/plain; q=1")
    assert (refused.status, refused.body[:32]) == (406, b"Accept type text/plain is not su")
    # encoders.encode knows csv and json only: jsonlines escapes the view as Flask's 500.
    assert xgboost_container.invoke(features, "text/csv", "application/jsonlines").status == 500


def test_xgboost_with_missing_values_agrees_with_xgboost(xgboost_container, serving_artifacts):
    slow = XGBoostContainer(serving_artifacts.xgboost_dir, {}, engine="xgboost")
    width = serving_artifacts.manifest["feature_width"]
    for body in (b"1.0" + b",0.0" * (width - 1), b"1,0,0", b"nan," * (width - 1) + b"1.0", b"," + b"1.0," * (width - 2)):
        assert xgboost_container.invoke(body, "text/csv", None) == slow.invoke(body, "text/csv", None)


# --- the pipeline ---------------------------------------------------------------------------

def test_the_callers_accept_reaches_only_the_last_container(pipeline, row, serving_artifacts):
    # The preprocess container's own default (text/csv, from its environment) feeds XGBoost; the
    # caller's Accept shapes only the postprocess answer.
    result = pipeline.invoke(",".join(row).encode(), "text/csv", "application/jsonlines")
    assert result.failure is None
    assert result.response.content_type == "application/jsonlines"
    assert result.response.body.decode() in serving_artifacts.manifest["label_values"]


def test_a_container_error_names_the_container(pipeline, row):
    result = pipeline.invoke(",".join(row[:2]).encode(), "text/csv", None)
    assert result.failure.hostname == "container-1" and result.failure.response.status == 400
    result = pipeline.invoke(",".join(row).encode(), "text/csv", "application/json")
    assert result.failure.hostname == "container-3"


def test_without_a_default_accept_the_preprocess_container_still_feeds_xgboost_csv(serving_artifacts, containers, row):
    env = serving_artifacts.environments()[0]
    env.pop("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT")
    bare = InferencePipeline([SparkMLServingContainer(serving_artifacts.preprocess_dir, env), *containers[1:]])
    assert bare.predict_csv_line(",".join(row)) in serving_artifacts.manifest["label_values"]
