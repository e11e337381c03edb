"""qa_test's decisions one by one: which held-out rows are tested, how each
is sent and its answer read, which refusals count as a wrong answer and which
stop the test, and what the report and the state machine are told.

A row skipped or cut short makes QA judge the model on a subset; an answer
misread makes a good model fail (or a bad one pass); a report field lost is a
fact the approver no longer sees. The endpoint is botocore's Stubber on a real
sagemaker-runtime client (or a plain object where a call's own error is the
point); S3 is moto."""
from __future__ import annotations

import io
import json
import re
from datetime import datetime, timezone

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from lambda_fixtures import ARTIFACTS, REGION, contract_manifest, make_run, put, stubbed_client
from localmode.serving.containers import _parse_csv


@pytest.fixture
def qa(load_function):
    return load_function("qa_test")


def body(text: str) -> StreamingBody:
    data = text.encode("utf-8")
    return StreamingBody(io.BytesIO(data), len(data))


def stored(s3, kind: str, lines: str, run_id: str = "qa-run", **changes) -> dict:
    run = make_run(run_id)
    manifest = contract_manifest(kind, run, **changes)
    put(s3, run["run_prefix"] + "manifest.json", manifest)
    put(s3, manifest["uris"]["test"] + "part-00000.csv", lines)
    return {"run": run, "names": {"qa_endpoint": f"{run_id}-qa"}, "manifest_uri": run["run_prefix"] + "manifest.json"}


def report(s3, event) -> dict:
    bucket, key = (event["run"]["run_prefix"] + "qa/report.json")[5:].split("/", 1)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def answering(runtime, stub, endpoint: str, records: list[str], answers: list[str]) -> None:
    for record, answer in zip(records, answers):
        stub.add_response("invoke_endpoint", {"Body": body(answer), "ContentType": "text/csv"},
                          {"EndpointName": endpoint, "ContentType": "text/csv", "Accept": "text/csv",
                           "Body": record.encode("utf-8")})


BINARY_ROWS = "1.5,2,left,benign\n2.5,3,right,malignant\n3.5,4,left,benign\n4.5,5,right,malignant\n"
BINARY_RECORDS = ["1.5,2,left", "2.5,3,right", "3.5,4,left", "4.5,5,right"]


# ---------------------------------------------------------------- reading the test split

def test_blank_lines_anywhere_are_skipped(qa, s3):
    uri = f"s3://{ARTIFACTS}/runs/x/data/test/"
    put(s3, uri + "part-00000.csv", "a,b,yes\n\nc,d,no\r\n\r\ne,f,yes\n")
    put(s3, uri + "part-00001.csv", "\ng,h,no\n")
    assert qa.read_test_rows(s3, uri, 2, 100) == [(["a", "b"], "yes"), (["c", "d"], "no"), (["e", "f"], "yes"),
                                                   (["g", "h"], "no")]


def test_the_row_cap_is_exact_across_parts(qa, s3):
    uri = f"s3://{ARTIFACTS}/runs/x/data/test/"
    put(s3, uri + "part-00000.csv", "a,yes\nb,no\n")
    put(s3, uri + "part-00001.csv", "c,yes\nd,no\n")
    assert sorted(truth for _, truth in qa.read_test_rows(s3, uri, 1, 3)) in (["no", "yes", "yes"], ["no", "no", "yes"])
    assert sorted(truth for _, truth in qa.read_test_rows(s3, uri, 1, 2)) == ["no", "yes"]
    assert len(qa.read_test_rows(s3, uri, 1, 1)) == 1
    assert qa.read_test_sample(s3, uri, 1, 4)[1] == {"method": "all", "rows": 4, "of": 4}


def test_qa_scores_a_seeded_stratified_sample_of_a_split_sorted_by_label(qa, s3):
    """Issue 22: on a file sorted by its label, the first QA_MAX_ROWS rows held one class only. The sample's label
    mix is the split's within one row per label, it spreads over the whole split, and the seed decides it."""
    uri = f"s3://{ARTIFACTS}/runs/x/data/test/"
    labels = ["a"] * 6000 + ["b"] * 3000 + ["c"] * 1000  # sorted, as the split keeps a sorted input's order
    put(s3, uri + "part-00000.csv", "".join(f"{i},{label}\n" for i, label in enumerate(labels[:5000])))
    put(s3, uri + "part-00001.csv", "".join(f"{i + 5000},{label}\n" for i, label in enumerate(labels[5000:])))
    rows, sample = qa.read_test_sample(s3, uri, 1, 1000, seed=42)
    assert sample == {"method": "stratified random by label", "rows": 1000, "of": 10000, "seed": 42}
    mix = {label: sum(1 for _, truth in rows if truth == label) for label in "abc"}
    assert mix == {"a": 600, "b": 300, "c": 100}
    positions = sorted(int(features[0]) for features, _ in rows)
    # Uniform within each label: the chosen rows' positions spread over each label's run of rows.
    for label, (start, end) in {"a": (0, 6000), "b": (6000, 9000), "c": (9000, 10000)}.items():
        inside = [p for p in positions if start <= p < end]
        assert abs(sum(inside) / len(inside) - (start + end - 1) / 2) < (end - start) * 0.05
    assert qa.read_test_sample(s3, uri, 1, 1000, seed=42) == (rows, sample)
    assert qa.read_test_sample(s3, uri, 1, 1000, seed=7)[0] != rows
    regression_rows, regression_sample = qa.read_test_sample(s3, uri, 1, 1000, seed=42, stratified=False)
    assert regression_sample["method"] == "uniform random" and len(regression_rows) == 1000


def test_a_row_with_the_wrong_field_count_is_named_by_part_and_row(qa, s3):
    uri = f"s3://{ARTIFACTS}/runs/x/data/test/"
    put(s3, uri + "part-00000.csv", "a,b,yes\n\na,b,c,no\n")
    with pytest.raises(qa.TestDataInvalid, match=re.escape(
            f"{uri}part-00000.csv row 3: 4 fields, expected 2 features and the label")):
        qa.read_test_rows(s3, uri, 2, 100)


def test_non_ascii_fields_are_read_as_utf8(qa, s3):
    uri = f"s3://{ARTIFACTS}/runs/x/data/test/"
    put(s3, uri + "part-00000.csv", "Zürich,ja\n".encode("utf-8"))
    assert qa.read_test_rows(s3, uri, 1, 10) == [(["Zürich"], "ja")]


# ---------------------------------------------------------------- one request, one answer

def test_a_record_is_one_csv_line_quoted_only_where_needed(qa):
    assert qa.csv_record(["a", "b c", "1,5", 'say "hi"', "", "ü"]) == 'a,b c,"1,5","say ""hi""",,ü'.encode("utf-8")


@pytest.mark.parametrize("field", ["two\nlines", "carriage\rreturn", "crlf\r\nend"])
def test_a_field_with_a_line_break_stays_inside_the_one_record(qa, field):
    """SparkML Serving reads the body with commons-csv and transforms the first record only
    (DataConversionHelper): an unquoted line break would cut the row there."""
    record = qa.csv_record([field, "x"])
    assert _parse_csv(record.decode("utf-8")) == [[field, "x"]]


@pytest.mark.parametrize("answer, expected", [(b"acc\n", "acc"), (b"  acc  \r\n", "acc"), (b"", ""), (b"\n \n", ""),
                                              (b'"good"\n', "good"), (b"acc,0.93\nunacc\n", "acc"),
                                              (b' "v good" ,x', "v good"), ("ü\n".encode("utf-8"), "ü")])
def test_the_answer_is_the_first_field_of_the_first_line(qa, answer, expected):
    assert qa.first_csv_field(answer) == expected


@pytest.mark.parametrize("text, expected", [("3.5", 3.5), (" -2 ", -2.0), ("1e3", 1000.0), ("nan", None), ("inf", None),
                                            ("-inf", None), ("", None), ("high", None), (None, None)])
def test_a_regression_answer_is_a_finite_number_or_nothing(qa, text, expected):
    assert qa.number_or_none(text) == expected


class _Refusing:
    """A runtime whose every call fails with `error` (a ClientError response dict)."""

    def __init__(self, error: dict):
        self.error = error
        self.calls = 0

    def invoke_endpoint(self, **_):
        self.calls += 1
        raise ClientError(self.error, "InvokeEndpoint")


def test_a_model_error_is_a_wrong_answer_with_its_message_and_only_five_examples_kept(qa):
    rows = [([str(i)], "yes") for i in range(7)]
    runtime = _Refusing({"Error": {"Code": "ModelError", "Message": "Received client error (400)"}})
    answers, examples = qa.ask_endpoint(runtime, "ep", rows, lambda a: (a, None))
    assert answers == [None] * 7 and runtime.calls == 7
    assert examples == [{"features": [str(i)], "truth": "yes", "problem": "Received client error (400)"} for i in range(5)]


def test_a_model_error_without_a_message_says_model_error(qa):
    answers, examples = qa.ask_endpoint(_Refusing({"Error": {"Code": "ModelError"}}), "ep", [(["1"], "y")],
                                        lambda a: (a, None))
    assert answers == [None] and examples[0]["problem"] == "ModelError"


@pytest.mark.parametrize("error", [{"Error": {"Code": "ThrottlingException", "Message": "slow"}},
                                   {"Error": {"Code": "ValidationException", "Message": "no endpoint"}}, {}])
def test_any_other_endpoint_error_stops_the_test(qa, error):
    runtime = _Refusing(error)
    with pytest.raises(ClientError):
        qa.ask_endpoint(runtime, "ep", [(["1"], "y"), (["2"], "n")], lambda a: (a, None))
    assert runtime.calls == 1


def test_valid_answers_leave_no_examples_and_invalid_ones_keep_the_validators_answer(qa):
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    with Stubber(runtime) as stub:
        answering(runtime, stub, "ep", ["1", "2"], ["yes\n", "maybe\n"])
        answers, examples = qa.ask_endpoint(runtime, "ep", [(["1"], "yes"), (["2"], "no")],
                                            lambda a: (a.upper(), None if a == "yes" else f"{a} is not a label"))
    assert answers == ["YES", "MAYBE"]
    assert examples == [{"features": ["2"], "truth": "no", "problem": "maybe is not a label"}]


# ---------------------------------------------------------------- the whole test

def test_the_report_and_the_answer_carry_every_fact_of_the_run(qa, s3, monkeypatch):
    event = stored(s3, "binary", BINARY_ROWS, quality_gate={"metric": "accuracy", "threshold": 0.75})
    monkeypatch.setattr(qa, "utc_now", lambda: datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc))
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    with Stubber(runtime) as stub:
        answering(runtime, stub, "qa-run-qa", BINARY_RECORDS, ["benign\n", "malignant\n", "benign\n", "benign\n"])
        result = qa.qa_test(s3, runtime, event, threshold=0.99, max_rows=100)
        stub.assert_no_pending_responses()
    report_uri = f"s3://{ARTIFACTS}/runs/qa-run/qa/report.json"
    # 3 of 4 right: exactly the spec's 0.75, which passes.
    assert result == {"problem_type": "binary", "metric": "accuracy", "value": 0.75, "threshold": 0.75,
                      "higher_is_better": True, "accuracy": 0.75, "correct": 3, "rows": 4, "rows_available": 150,
                      "sample": {"method": "all", "rows": 4, "of": 4},
                      "report_uri": report_uri, "passed": True,
                      "production": {"endpoint_name": None, "compared": False, "accuracy": None, "value": None,
                                     "note": "no production endpoint is configured for this dataset"},
                      "regression_against_production": None, "rows_answered_differently": None}
    got = report(s3, event)
    assert {key: got[key] for key in ("run_id", "dataset", "problem_type", "label_name", "binary_threshold",
                                      "endpoint_name", "threshold", "passed", "rows_available", "invalid_examples",
                                      "tested_at", "rows", "correct", "versus_production")} == {
        "run_id": "qa-run", "dataset": "breast-cancer", "problem_type": "binary", "label_name": "diagnosis",
        "binary_threshold": 0.5, "endpoint_name": "qa-run-qa", "threshold": 0.75, "passed": True,
        "rows_available": 150, "invalid_examples": [], "tested_at": "2025-03-04T05:06:07Z", "rows": 4, "correct": 3,
        "versus_production": None}
    assert got["gate"] == {"metric": "accuracy", "threshold": 0.75, "threshold_source": "spec",
                           "higher_is_better": True, "value": 0.75, "passed": True}
    assert got["roc_auc"] == 0.75 and got["positive_label"] == "malignant"


def test_a_multiclass_report_has_no_binary_threshold(qa, s3):
    event = stored(s3, "multiclass", "a,b,c,d,e,f,unacc\n", binary_threshold=0.5)
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    with Stubber(runtime) as stub:
        answering(runtime, stub, "qa-run-qa", ["a,b,c,d,e,f"], ["unacc\n"])
        qa.qa_test(s3, runtime, event, threshold=0.5, max_rows=100)
    got = report(s3, event)
    assert got["binary_threshold"] is None and got["label_name"] == "class" and got["gate"]["threshold_source"] == "AccuracyThreshold"


def test_the_manifest_must_belong_to_the_run_under_test(qa, s3):
    event = stored(s3, "binary", BINARY_ROWS)
    put(s3, event["manifest_uri"], contract_manifest("binary", make_run("another-run")))
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    with Stubber(runtime):
        with pytest.raises(Exception, match="run_id is 'another-run', expected 'qa-run'") as raised:
            qa.qa_test(s3, runtime, event, threshold=0.5, max_rows=100)
    assert type(raised.value).__name__ == "ManifestInvalid"


def test_a_classification_failure_counts_right_rows_and_invalid_answers(qa, s3):
    event = stored(s3, "binary", BINARY_ROWS)  # gate: roc_auc >= 0.9 from the spec
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    with Stubber(runtime) as stub:
        answering(runtime, stub, "qa-run-qa", BINARY_RECORDS, ["benign\n", "0.93\n", "benign\n", "malignant\n"])
        with pytest.raises(qa.QualityBelowThreshold) as raised:
            qa.qa_test(s3, runtime, event, threshold=0.5, max_rows=100)
    assert str(raised.value) == (
        "QA roc_auc 0.7500 is below the threshold 0.9000 (higher is better; threshold from spec) "
        f"(3/4 held-out rows correct, 1 invalid answers); report: s3://{ARTIFACTS}/runs/qa-run/qa/report.json")


def test_a_classification_failure_without_invalid_answers_says_none(qa, s3):
    event = stored(s3, "binary", BINARY_ROWS)
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    with Stubber(runtime) as stub:
        answering(runtime, stub, "qa-run-qa", BINARY_RECORDS, ["benign\n"] * 4)
        with pytest.raises(qa.QualityBelowThreshold) as raised:
            qa.qa_test(s3, runtime, event, threshold=0.5, max_rows=100)
    assert "(2/4 held-out rows correct); report: " in str(raised.value)


def test_a_regression_failure_counts_the_rows_answered_with_a_number(qa, s3):
    event = stored(s3, "regression", "40,1,20.5,100\n41,,21,110\n42,1,21.5,120\n",
                   quality_gate={"metric": "mae", "threshold": 1.0})
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    with Stubber(runtime) as stub:
        answering(runtime, stub, "qa-run-qa", ["40,1,20.5", "41,,21", "42,1,21.5"], ["103\n", "oops\n", "117\n"])
        with pytest.raises(qa.QualityBelowThreshold) as raised:
            qa.qa_test(s3, runtime, event, threshold=0.5, max_rows=100)
    message = str(raised.value)
    assert message.startswith("QA mae 3.0000 is above the threshold 1.0000 (lower is better; threshold from spec) "
                              "(2 of 3 held-out rows answered with a number); report: ")
    assert "invalid answers" not in message
    got = report(s3, event)
    assert got["binary_threshold"] is None and got["invalid_examples"] == [
        {"features": ["41", "", "21"], "truth": "110", "problem": "answer 'oops' is not a number"}]


def test_a_passing_regression_reports_no_accuracy(qa, s3):
    event = stored(s3, "regression", "40,1,20.5,100\n41,,21,110\n42,1,21.5,120\n")
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    with Stubber(runtime) as stub:
        answering(runtime, stub, "qa-run-qa", ["40,1,20.5", "41,,21", "42,1,21.5"], ["100\n", "110\n", "120\n"])
        result = qa.qa_test(s3, runtime, event, threshold=0.99, max_rows=100, r2_threshold=0.9)
    assert result["metric"] == "r2" and result["value"] == 1.0 and result["threshold"] == 0.9
    assert result["accuracy"] is None and result["correct"] is None and result["rows"] == 3


def test_labels_outside_the_manifest_are_test_data_invalid(qa):
    with pytest.raises(qa.TestDataInvalid, match=r"^test labels do not fit the manifest: true labels \['x'\]"):
        qa.score({"problem_type": "binary", "label_values": ["a", "b"]}, [([], "x")], ["a"])


def test_a_regression_label_that_is_not_a_number_counts_every_such_row(qa):
    rows = [([], "1"), ([], "high"), ([], "nan"), ([], "2")]
    with pytest.raises(qa.TestDataInvalid, match=re.escape("test row 2: the label 'high' is not a number (2 such rows)")):
        qa.score({"problem_type": "regression"}, rows, [1.0] * 4)


def test_the_gate_sees_the_unrounded_accuracy(qa):
    rows = [([], "a")] * 2 + [([], "b")]
    metrics, exact = qa.score({"problem_type": "binary", "label_values": ["a", "b"]}, rows, ["a", "a", "a"])
    assert metrics["accuracy"] == 0.666667 and exact == {"accuracy": 2 / 3}
    metrics, exact = qa.score({"problem_type": "regression"}, [([], "1")], [1.0])
    assert exact == {}


def test_a_misfit_gate_is_a_manifest_error_naming_the_manifest(qa, s3, monkeypatch):
    event = stored(s3, "binary", BINARY_ROWS)
    # A manifest that passed validation but whose gate decide_gate refuses (e.g. an older validator).
    monkeypatch.setattr(qa, "decide_gate", lambda *a, **k: (_ for _ in ()).throw(qa.GateInvalid("bad metric")))
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    with Stubber(runtime) as stub:
        answering(runtime, stub, "qa-run-qa", BINARY_RECORDS, ["benign\n"] * 4)
        with pytest.raises(Exception, match=re.escape(f"manifest {event['manifest_uri']}: bad metric")) as raised:
            qa.qa_test(s3, runtime, event, threshold=0.5, max_rows=100)
    assert type(raised.value).__name__ == "ManifestInvalid"


@pytest.mark.parametrize("event", [None, {}, {"run": {}}, {"run": {}, "names": {}, "manifest_uri": "s3://b/m"},
                                   {"run": {}, "names": {"qa_endpoint": "e"}}])
def test_an_incomplete_event_names_what_it_needs(qa, event):
    with pytest.raises(Exception, match=r"the event needs run, names\.qa_endpoint and manifest_uri") as raised:
        qa.qa_test(None, None, event, threshold=0.5, max_rows=10)
    assert type(raised.value).__name__ == "InvalidEvent"


def test_a_quoted_field_keeps_its_line_break(qa, s3):
    # Spark's CSV writer quotes a value holding a line break; the record sent must keep it.
    uri = f"s3://{ARTIFACTS}/runs/x/data/test/"
    put(s3, uri + "part-00000.csv", b'a,"two\nlines",yes\r\nb,c,no\n')
    rows = qa.read_test_rows(s3, uri, 2, 10)
    assert rows == [(["a", "two\nlines"], "yes"), (["b", "c"], "no")]


def test_a_line_holding_only_an_empty_quoted_field_is_blank(qa, s3):
    uri = f"s3://{ARTIFACTS}/runs/x/data/test/"
    put(s3, uri + "part-00000.csv", b'a,yes\n""\nb,no\n')
    assert qa.read_test_rows(s3, uri, 1, 10) == [(["a"], "yes"), (["b"], "no")]


def test_just_below_the_line_fails_even_when_the_rounded_accuracy_reaches_it(qa, s3):
    # 2/3 = 0.6666666..., reported as 0.666667: above a 0.6666667 threshold, but the model is not.
    event = stored(s3, "binary", "1,2,x,benign\n2,3,y,benign\n3,4,z,malignant\n",
                   quality_gate={"metric": "accuracy", "threshold": 0.6666667})
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    with Stubber(runtime) as stub:
        answering(runtime, stub, "qa-run-qa", ["1,2,x", "2,3,y", "3,4,z"], ["benign\n"] * 3)
        with pytest.raises(qa.QualityBelowThreshold, match=r"^QA accuracy 0\.6667 is below the threshold 0\.6667 "):
            qa.qa_test(s3, runtime, event, threshold=0.5, max_rows=100)
    assert report(s3, event)["accuracy"] == 0.666667


def test_the_regression_default_bar_is_an_r2_of_one_half(qa, s3):
    # R2Threshold's default (template.yaml) when the spec's gate has no threshold: a constant answer (r2 0) fails, r2 0.91 passes.
    event = stored(s3, "regression", "40,1,20.5,100\n41,,21,110\n42,1,21.5,120\n")
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    with Stubber(runtime) as stub:
        answering(runtime, stub, "qa-run-qa", ["40,1,20.5", "41,,21", "42,1,21.5"], ["110\n", "110\n", "110\n"])
        with pytest.raises(qa.QualityBelowThreshold, match=r"^QA r2 0\.0000 is below the threshold 0\.5000 "):
            qa.qa_test(s3, runtime, event, threshold=0.99, max_rows=100)
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    with Stubber(runtime) as stub:
        answering(runtime, stub, "qa-run-qa", ["40,1,20.5", "41,,21", "42,1,21.5"], ["103\n", "110\n", "117\n"])
        result = qa.qa_test(s3, runtime, event, threshold=0.99, max_rows=100)
    # r2 = 1 - (18 / 3) / (200 / 3) = 0.91
    assert result["threshold"] == 0.5 and result["value"] == 0.91 and result["passed"] is True


# ---------------------------------------------------------------- against production

def test_without_a_production_endpoint_nothing_is_asked(qa):
    """No DescribeEndpoint call at all (an unstubbed client would fail on one)."""
    with stubbed_client("sagemaker") as (sagemaker, _):
        for unnamed in (None, ""):
            assert qa.production_to_compare(sagemaker, unnamed) == (
                False, "no production endpoint is configured for this dataset")


def test_without_a_sagemaker_client_production_is_never_asked_even_when_named(qa, s3):
    event = stored(s3, "binary", BINARY_ROWS, quality_gate={"metric": "accuracy", "threshold": 0.75})
    event["names"]["production_endpoint"] = "breast-cancer-prod"
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    with Stubber(runtime) as stub:
        answering(runtime, stub, "qa-run-qa", BINARY_RECORDS, ["benign\n", "malignant\n", "benign\n", "benign\n"])
        result = qa.qa_test(s3, runtime, event, threshold=0.5, max_rows=100)
        stub.assert_no_pending_responses()
    assert result["production"] == {"endpoint_name": "breast-cancer-prod", "compared": False, "accuracy": None,
                                    "value": None, "note": "no production endpoint is configured for this dataset"}


@pytest.mark.parametrize("higher_is_better, challenger, champion, expected", [
    # Bounded metrics: absolute, positive when the challenger is worse.
    (True, 0.90, 0.95, 0.95 - 0.90), (True, 0.97, 0.95, 0.95 - 0.97),
    # Errors in the label's units: relative to production's, below 1 too.
    (False, 0.6, 0.5, (0.6 - 0.5) / 0.5), (False, 3.0, 4.0, -0.25),
    # Production without error: the challenger is as good (0) or infinitely worse.
    (False, 0.0, 0.0, 0.0), (False, 0.5, 0.0, float("inf")),
    # Undefined on either side compares nothing.
    (True, None, 0.9, None), (True, 0.9, None, None), (False, None, 2.0, None), (False, 2.0, None, None),
])
def test_how_much_worse_the_challenger_is(qa, higher_is_better, challenger, champion, expected):
    got = qa.regression_against(higher_is_better, challenger, champion)
    assert got == (pytest.approx(expected) if isinstance(expected, float) and expected != float("inf") else expected)


def test_an_undefined_metric_on_one_side_passes_to_the_gate_alone(qa):
    gate = {"metric": "r2", "higher_is_better": True}
    rows = [(["1"], "2.0")]
    versus = qa.comparison(rows, gate, 0.8, [2.0], None, [2.5], 0.0)
    assert versus == {"metric": "r2", "higher_is_better": True, "new_model": 0.8, "production": None,
                      "regression": None, "rows_answered_differently": 1,
                      "examples": [{"features": ["1"], "truth": "2.0", "new_model": 2.0, "production": 2.5}],
                      "max_regression": 0.0, "passed": True}


def production_serving(stub: Stubber, endpoint: str) -> None:
    """DescribeEndpoint of a serving endpoint (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeEndpoint.html)."""
    stub.add_response("describe_endpoint", {
        "EndpointName": endpoint, "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{endpoint}",
        "EndpointConfigName": f"{endpoint}-v1-config", "EndpointStatus": "InService",
        "CreationTime": "2026-01-01T00:00:00Z", "LastModifiedTime": "2026-01-01T00:00:00Z"}, {"EndpointName": endpoint})


def qa_against_production(qa, s3, event, production: str, records, new_answers, production_answers, max_regression):
    """QA of `event` with `production` serving: every record to the QA endpoint, then to production."""
    event["names"]["production_endpoint"] = production
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    with stubbed_client("sagemaker") as (sagemaker, described), Stubber(runtime) as stub:
        production_serving(described, production)
        answering(runtime, stub, "qa-run-qa", records, new_answers)
        answering(runtime, stub, production, records, production_answers)
        try:
            return qa.qa_test(s3, runtime, event, threshold=0.5, max_rows=100, sagemaker=sagemaker,
                              max_regression=max_regression)
        finally:
            stub.assert_no_pending_responses()


def test_a_regression_challenger_is_judged_relative_to_productions_error(qa, s3):
    """MAE 2 against production's 1 on the same rows: 100% worse, beyond the 10% allowed; the message says so
    in the label's terms, lower being better."""
    event = stored(s3, "regression", "40,1,20.5,100\n41,,21,110\n42,1,21.5,120\n",
                   quality_gate={"metric": "mae", "threshold": 10.0})
    with pytest.raises(qa.WorseThanProduction) as raised:
        qa_against_production(qa, s3, event, "diabetes-prod", ["40,1,20.5", "41,,21", "42,1,21.5"],
                              ["102\n", "112\n", "118\n"], ["101\n", "111\n", "119\n"], max_regression=0.1)
    assert str(raised.value) == (
        "QA mae 2.0000 is 100.0% worse than production diabetes-prod's 1.0000 (lower is better) on the same 3 "
        "held-out rows (at most 10.0% allowed; 3 rows answered differently); "
        f"report: s3://{ARTIFACTS}/runs/qa-run/qa/report.json")
    got = report(s3, event)
    assert {key: got["production"][key] for key in ("endpoint_name", "compared", "note", "mae")} == {
        "endpoint_name": "diabetes-prod", "compared": True, "mae": 1.0,
        "note": "production endpoint diabetes-prod (InService) answered the same rows"}
    assert (got["versus_production"]["new_model"], got["versus_production"]["production"]) == (2.0, 1.0)


def test_productions_side_is_its_exact_ratio_too(qa, s3):
    """Production right on 2 of 3 rows, the new model on 1: exactly one third worse, and one third is allowed.
    Production's rounded accuracy (0.666667) would make it a hair more than a third and fail the run."""
    event = stored(s3, "multiclass", "a,b,c,d,e,f,unacc\na,b,c,d,e,g,unacc\na,b,c,d,e,h,unacc\n",
                   quality_gate={"metric": "accuracy", "threshold": 0.3})
    result = qa_against_production(qa, s3, event, "car-prod", ["a,b,c,d,e,f", "a,b,c,d,e,g", "a,b,c,d,e,h"],
                                   ["unacc\n", "acc\n", "acc\n"], ["unacc\n", "unacc\n", "acc\n"], max_regression=1 / 3)
    assert result["passed"] is True and result["regression_against_production"] == round(1 / 3, 6)
    assert result["production"]["value"] == 2 / 3


def test_an_endpoint_too_wide_for_a_csv_schema_is_asked_in_json_carrying_the_runs_schema(qa, s3):
    """A preprocess schema over SageMaker's 1024 characters is not in the container's environment
    (create_model), so each row goes as `application/json` {"schema", "data"}, which SparkML Serving's
    transformRequestJson reads (aws/sagemaker-sparkml-serving-container, ServingController)."""
    schema = {"input": [{"name": f"c{i}", "type": "string"} for i in range(1, 4)],
              "output": {"name": "features", "type": "double", "struct": "vector"}}
    schema["input"][0]["name"] = "c" * 1000  # too long for the environment, whatever the width
    event = stored(s3, "binary", BINARY_ROWS, schemas={"preprocess": schema, "postprocess": None},
                   quality_gate={"metric": "accuracy", "threshold": 0.5})
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    with Stubber(runtime) as stub:
        for record, answer in zip(BINARY_RECORDS, ["benign", "malignant", "benign", "malignant"]):
            document = {"schema": schema, "data": record.split(",")}
            stub.add_response("invoke_endpoint", {"Body": body(answer + "\n"), "ContentType": "text/csv"},
                              {"EndpointName": "qa-run-qa", "ContentType": "application/json", "Accept": "text/csv",
                               "Body": json.dumps(document, separators=(",", ":")).encode("utf-8")})
        result = qa.qa_test(s3, runtime, event, threshold=0.99, max_rows=100)
        stub.assert_no_pending_responses()
    assert result["accuracy"] == 1.0 and result["passed"]
