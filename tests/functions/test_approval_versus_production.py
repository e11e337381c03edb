"""Champion versus challenger as the approver sees it: the QA report qa_test
writes (built here by qa_test's and pipeline_common.metrics' own functions from
the answers of both models), summarised by request_approval into the email and
the approval record, and rendered by approval_api into the page.

The page and the email of a second run are kept as snapshots
(tests/fixtures/approval/): a change to what the reviewer reads shows up as a
diff to review. UPDATE_SNAPSHOTS=1 rewrites them.
"""
from __future__ import annotations

import html
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from approval_support import api, approval_api, request, request_approval, world  # noqa: F401 (fixtures)
from test_fn_approval import nonce_of, open_page

from lambda_fixtures import put
from pipeline_common.metrics import classification_metrics, regression_metrics

SNAPSHOTS = Path(__file__).resolve().parents[1] / "fixtures" / "approval"
NOW = datetime(2026, 11, 30, 9, 0, 0, tzinfo=timezone.utc)
PRODUCTION = "car-evaluation-prod"
LABELS = ["unacc", "acc", "good", "vgood"]
# Twenty held-out car rows: buying, maint, doors, persons, lug_boot, safety and the true class.
ROWS = [
    (["vhigh", "vhigh", "2", "2", "small", "low"], "unacc"), (["low", "low", "4", "4", "big", "high"], "vgood"),
    (["med", "low", "4", "more", "med", "high"], "vgood"), (["high", "med", "3", "4", "med", "med"], "acc"),
    (["low", "med", "2", "4", "small", "high"], "good"), (["vhigh", "low", "4", "more", "big", "high"], "acc"),
    (["med", "med", "5more", "more", "big", "med"], "acc"), (["low", "low", "2", "more", "small", "med"], "unacc"),
    (["high", "high", "4", "2", "big", "high"], "unacc"), (["low", "vhigh", "3", "4", "med", "high"], "acc"),
    (["med", "low", "2", "4", "big", "low"], "unacc"), (["low", "med", "4", "4", "med", "med"], "good"),
    (["high", "low", "4", "more", "big", "high"], "acc"), (["vhigh", "med", "2", "more", "med", "high"], "acc"),
    (["low", "low", "5more", "4", "big", "med"], "good"), (["med", "high", "3", "2", "small", "high"], "unacc"),
    (["low", "high", "4", "more", "big", "high"], "vgood"), (["high", "vhigh", "2", "4", "small", "med"], "unacc"),
    (["med", "med", "4", "4", "big", "high"], "vgood"), (["vhigh", "high", "4", "4", "med", "low"], "unacc"),
]


def answers(wrong: dict[int, str]) -> list[str]:
    return [wrong.get(i, truth) for i, (_, truth) in enumerate(ROWS)]


def classification_report(qa, new: list[str], old: list[str], max_regression: float = 0.01) -> dict:
    """The report qa_test writes for a multiclass run compared with production."""
    truths = [truth for _, truth in ROWS]
    mine, theirs = classification_metrics(LABELS, truths, new), classification_metrics(LABELS, truths, old)
    gate = {"metric": "accuracy", "threshold": 0.7, "threshold_source": "AccuracyThreshold", "higher_is_better": True,
            "value": mine["accuracy"], "passed": True}
    versus = qa.comparison(ROWS, gate, mine["correct"] / len(ROWS), new, theirs["correct"] / len(ROWS), old,
                           max_regression)
    return {**mine, "dataset": "car", "problem_type": "multiclass", "label_name": "class", "gate": gate, "threshold": 0.7,
            "production": {"endpoint_name": PRODUCTION, "compared": True,
                           "note": f"production endpoint {PRODUCTION} (InService) answered the same rows", **theirs},
            "versus_production": versus}


@pytest.fixture(autouse=True)
def page_clock(approval_api, monkeypatch):  # noqa: F811 (fixture)
    """The page is opened a minute after the email was sent."""
    monkeypatch.setattr(approval_api, "utc_now", lambda: NOW + timedelta(minutes=1))


@pytest.fixture
def qa(load_function):
    return load_function("qa_test")


@pytest.fixture
def second_run(qa, world):  # noqa: F811 (fixture)
    """A challenger that fixes 3 of production's 4 mistakes and makes 1 of its own."""
    production = answers({3: "unacc", 4: "acc", 9: "unacc", 13: "good"})
    new_model = answers({13: "good", 16: "good"})
    put(world["s3"], world["run"]["run_prefix"] + "qa/report.json", classification_report(qa, new_model, production))
    return world


def test_the_email_puts_both_models_side_by_side(request_approval, second_run):  # noqa: F811 (fixture)
    message = request(second_run, request_approval, now=NOW)["email"]["Message"]
    lines = message.splitlines()
    # 18/20 right against production's 16/20: 0.1 better.
    assert "Production: accuracy 0.9000 against production's 0.8000: better by 0.1000 (worse by more than 0.0100 " \
           "fails QA)" in lines
    table = lines[lines.index("Versus production, on the same held-out rows") + 1:]
    assert table[1].split() == ["accuracy", "0.9000", "0.8000"]
    # Per class: production missed the one "good" row the new model gets; the new model misses a "vgood".
    assert "good recall 1.0000 0.6667".split() in [line.split() for line in table[:14]]
    assert "vgood recall 0.7500 1.0000".split() in [line.split() for line in table[:14]]
    assert "Rows answered differently: 4 of 20" in lines
    # The rows themselves, each with what both said, in the test split's order.
    differing = lines[lines.index("Rows answered differently: 4 of 20") + 2:][:4]
    assert [line.split()[:3] for line in differing] == [["acc", "acc", "unacc"], ["good", "good", "acc"],
                                                          ["acc", "acc", "unacc"], ["vgood", "good", "vgood"]]
    assert differing[0].split()[3] == "high,med,3,4,med,med"


def test_a_challenger_worse_within_the_allowance_is_said_to_be_worse(qa, request_approval, world):  # noqa: F811
    production, new_model = answers({}), answers({0: "acc"})
    put(world["s3"], world["run"]["run_prefix"] + "qa/report.json",
        classification_report(qa, new_model, production, max_regression=0.05))
    lines = request(world, request_approval, now=NOW)["email"]["Message"].splitlines()
    assert "Production: accuracy 0.9500 against production's 1.0000: worse by 0.0500 (worse by more than 0.0500 " \
           "fails QA)" in lines


def test_a_regression_email_compares_errors_relative_to_production(qa, request_approval, world):  # noqa: F811
    truths = [100.0, 150.0, 200.0, 250.0]
    features = [[str(i)] for i in range(4)]
    new, old = [110.0, 140.0, 200.0, 250.0], [100.0, 150.0, 210.0, 230.0]
    mine, theirs = regression_metrics(truths, new, features), regression_metrics(truths, old, features)
    gate = {"metric": "rmse", "threshold": 50.0, "higher_is_better": False, "value": mine["rmse"], "passed": True,
            "threshold_source": "spec"}
    versus = qa.comparison(list(zip(features, map(str, truths))), gate, mine["rmse"], new, theirs["rmse"], old, 0.1)
    put(world["s3"], world["run"]["run_prefix"] + "qa/report.json",
        {**mine, "problem_type": "regression", "gate": gate, "versus_production": versus,
         "production": {"endpoint_name": PRODUCTION, "compared": True, "note": "answered", **theirs}})
    lines = request(world, request_approval, now=NOW)["email"]["Message"].splitlines()
    # RMSE sqrt(200/4)=7.0711 against sqrt(500/4)=11.1803: 36.8% lower, i.e. better.
    assert "Production: rmse 7.0711 against production's 11.1803: better by 36.8% (worse by more than 10.0% fails QA)" \
        in lines
    figures = [line.split() for line in lines[lines.index("Versus production, on the same held-out rows") + 2:][:8]]
    assert ["RMSE", "7.0711", "11.1803"] in figures and ["MAE", "5.0000", "7.5000"] in figures
    assert ["residual", "mean", "0.0000", "2.5000"] in figures
    assert "Rows answered differently: 4 of 4" in lines


def test_the_first_run_of_a_dataset_says_so_in_email_and_page(request_approval, world, api):  # noqa: F811
    note = f"no production endpoint {PRODUCTION} yet: this is the dataset's first model"
    put(world["s3"], world["run"]["run_prefix"] + "qa/report.json",
        {"labels": LABELS, "accuracy": 0.9, "production": {"endpoint_name": PRODUCTION, "compared": False, "note": note},
         "versus_production": None})
    sent = request(world, request_approval, now=NOW)
    lines = sent["email"]["Message"].splitlines()
    assert f"Production: {note}" in lines and "Versus production, on the same held-out rows" not in lines
    page = open_page(api, sent["reference"])
    assert f"<h2>Versus production</h2><p>{html.escape(note)}</p>" in page


def test_values_from_the_data_are_escaped_in_the_comparison(qa, request_approval, world, api):  # noqa: F811
    production, new_model = answers({}), answers({0: "acc"})
    report = classification_report(qa, new_model, production, max_regression=0.1)
    report["versus_production"]["examples"][0]["features"] = ["<script>alert(1)</script>", "x"]
    put(world["s3"], world["run"]["run_prefix"] + "qa/report.json", report)
    page = open_page(api, request(world, request_approval, now=NOW)["reference"])
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;,x" in page


def snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{path} differs; UPDATE_SNAPSHOTS=1 rewrites it after review"


def test_the_second_runs_page_and_email_match_their_snapshots(request_approval, second_run, api):  # noqa: F811
    sent = request(second_run, request_approval, now=NOW, rows=len(ROWS))
    # The reference and the nonce are fresh secrets on every request: placeholders in the snapshot.
    page = open_page(api, sent["reference"])
    page = page.replace(nonce_of(page), "NONCE")
    email = sent["email"]["Message"].replace(sent["reference"], "REFERENCE")
    assert "NONCE" in page and "REFERENCE" in email
    snapshot("second_run_email.txt", f"Subject: {sent['email']['Subject']}\n\n{email}\n")
    snapshot("second_run_page.html", re.sub(r"(?<=>)(?=<(?:h2|dl|table|p|form|tr)\b)", "\n", page) + "\n")
