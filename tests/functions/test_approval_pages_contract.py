"""approval_api's rollback pages and its champion-versus-challenger section, word
for word (issue 12's additions, pinned for issue 13's mutation run).

What the approver reads decides what they do: the version a rollback deploys
and what serves now, which button deploys, what the new model does against
production. Every value in these pages comes from the run or the model
registry, so each fixture value holds an apostrophe, a double quote, `<` or
`&`: `_e` escapes with quote=True, and a page built with quote=False (or
without escaping) differs from the pinned text.
"""
from __future__ import annotations

import pytest
from approval_support import approval_api  # noqa: F401 (fixture)

TARGET = {"version": 1, "status": "Approved", "approval_description": "Approved by O'Brien <on the page>",
          "run_id": "car-first", "input_uri": "s3://in/car's.data", "input_version_id": 'v"42',
          "glue_job_run_id": "jr_1", "training_job": "car-first-train",
          "qa": {"accuracy": 0.97231, "rows": 259, "split's": "<test>"}, "qa_report_uri": "s3://a/q'a.json"}
SERVING = {"version": 2, "status": "Approved", "approval_description": "d&2", "run_id": "car-second",
           "input_uri": "s3://in/2", "input_version_id": "v2", "glue_job_run_id": "jr_2", "training_job": "t2",
           "qa": {"rmse": 1.5}, "qa_report_uri": "s3://a/2"}
ROLLBACK = {"kind": "rollback", "run_id": "rollback-v1-'17", "production_endpoint": 'car "eval"',
            "model_package_group": "car<&>", "target": TARGET, "serving": SERVING}

TARGET_ROWS = ("<dt>Version</dt><dd>1 (Approved: Approved by O&#x27;Brien &lt;on the page&gt;)</dd>"
               "<dt>QA</dt><dd>accuracy 0.9723, rows 259, split&#x27;s &lt;test&gt;</dd>"
               "<dt>Run</dt><dd>car-first on s3://in/car&#x27;s.data (object version v&quot;42)</dd>"
               "<dt>Glue job run, training job</dt><dd>jr_1, car-first-train</dd>"
               "<dt>QA report</dt><dd>s3://a/q&#x27;a.json</dd>")
SERVING_ROWS = ("<dt>Version</dt><dd>2 (Approved: d&amp;2)</dd>"
                "<dt>QA</dt><dd>rmse 1.5000</dd>"
                "<dt>Run</dt><dd>car-second on s3://in/2 (object version v2)</dd>"
                "<dt>Glue job run, training job</dt><dd>jr_2, t2</dd>"
                "<dt>QA report</dt><dd>s3://a/2</dd>")
INTRO = ("<p>Rollback run rollback-v1-&#x27;17 asks to deploy an earlier approved version of car&lt;&amp;&gt; to "
         "production endpoint car &quot;eval&quot;, through the same blue/green deployment and alarms as any "
         "deployment.</p>")
ROLLBACK_HTML = f"{INTRO}<h2>Roll back to</h2><dl>{TARGET_ROWS}</dl><h2>Serving now</h2><dl>{SERVING_ROWS}</dl>"


# ---------------------------------------------------------------- which record is a rollback

@pytest.mark.parametrize("summary, expected", [
    (ROLLBACK, True), ({"kind": "rollback"}, True), ({}, False), ({"kind": "approval"}, False),
    ({"kind": "Rollback"}, False), ({"run_id": "rollback"}, False)])
def test_only_a_summary_of_kind_rollback_is_a_rollback(approval_api, summary, expected):
    assert approval_api.is_rollback(summary) is expected


# ---------------------------------------------------------------- the rollback's summary

def test_the_rollback_page_shows_the_target_next_to_what_serves_now_escaped(approval_api):
    # Floats with the metrics' four decimals; a count or a text as it is (259, not 259.0000).
    assert approval_api.rollback_summary_html(ROLLBACK) == ROLLBACK_HTML
    # The approval page's summary of a rollback is exactly this, not the QA summary of a run.
    assert approval_api.summary_html(ROLLBACK) == ROLLBACK_HTML


def test_a_model_not_in_the_registry_is_named_by_its_endpoint_config(approval_api):
    summary = {**ROLLBACK, "serving": {"endpoint_config": "car-eval-config'1", "version": None}}
    assert approval_api.rollback_summary_html(summary) == (
        f"{INTRO}<h2>Roll back to</h2><dl>{TARGET_ROWS}</dl><h2>Serving now</h2>"
        "<p>A model not in the registry (endpoint config car-eval-config&#x27;1).</p>")


def test_a_version_without_qa_figures_says_so(approval_api):
    summary = {**ROLLBACK, "target": {**TARGET, "qa": {}}, "serving": {"version": 2, "qa": None}}
    assert approval_api.rollback_summary_html(summary) == (
        f"{INTRO}<h2>Roll back to</h2><dl>{TARGET_ROWS.replace('accuracy 0.9723, rows 259, split&#x27;s &lt;test&gt;', 'no QA figures recorded')}</dl>"
        "<h2>Serving now</h2><dl><dt>Version</dt><dd>2 (: )</dd><dt>QA</dt><dd>no QA figures recorded</dd>"
        "<dt>Run</dt><dd> on  (object version )</dd><dt>Glue job run, training job</dt><dd>, </dd>"
        "<dt>QA report</dt><dd></dd></dl>")


def test_a_rollback_summary_missing_its_versions_still_renders(approval_api):
    """_validated refuses such a request; a record written by hand still shows a page, not a 500."""
    assert approval_api.rollback_summary_html({"kind": "rollback", "run_id": "r"}) == (
        "<p>Rollback run r asks to deploy an earlier approved version of  to production endpoint , through the same "
        "blue/green deployment and alarms as any deployment.</p><h2>Roll back to</h2><dl><dt>Version</dt><dd> (: )</dd>"
        "<dt>QA</dt><dd>no QA figures recorded</dd><dt>Run</dt><dd> on  (object version )</dd>"
        "<dt>Glue job run, training job</dt><dd>, </dd><dt>QA report</dt><dd></dd></dl><h2>Serving now</h2>"
        "<p>A model not in the registry (endpoint config ).</p>")


# ---------------------------------------------------------------- title, form and result of a rollback

def test_the_title_names_the_endpoint_and_the_target_version(approval_api):
    # The title is escaped where it is written (document()), not here.
    assert approval_api.approval_title(ROLLBACK) == 'Roll car "eval" back to version 1?'
    assert approval_api.approval_title({"kind": "rollback", "production_endpoint": "ep"}) == \
        "Roll ep back to version None?"
    page = approval_api.document(approval_api.Page(200, approval_api.approval_title(ROLLBACK), ""))
    assert "<title>Roll car &quot;eval&quot; back to version 1?</title>" in page
    assert approval_api.approval_title({**ROLLBACK, "kind": "approval", "dataset": "car"}) == \
        "Approve car run rollback-v1-'17 for production?"


FORM_TAIL = ('<label><input type="radio" name="decision" value="reject" required> Reject: keep production as it is'
             '</label><br><p><label>Reason (required to reject)<br><textarea name="reason" rows="4" cols="60" '
             'maxlength="2000"></textarea></label></p><input type="hidden" name="nonce" value="N1"><p><button '
             'type="submit">Submit decision</button></p></form><p>This request expires at 2025-01-02T03:04:05Z.</p>')


@pytest.mark.parametrize("summary, label", [
    (ROLLBACK, "Approve: roll production back to this version"),
    ({"run_id": "r1"}, "Approve: deploy this model to production"),
    (None, "Approve: deploy this model to production")])
def test_the_approve_button_says_what_approving_does(approval_api, summary, label):
    record = {"nonce": "N1", "expires_at": 1735787045}
    if summary is not None:
        record["summary"] = summary
    assert approval_api.form_html(record) == (
        f'<form method="post"><label><input type="radio" name="decision" value="approve" required> {label}</label><br>'
        + FORM_TAIL)


@pytest.mark.parametrize("decision, expected", [
    ("approve", (200, "Approved", "<p>The rollback of car &quot;eval&quot; to version 1 is approved. The pipeline "
                                  "now deploys it; a notification follows.</p>")),
    # Rejecting a rollback changes nothing: it reads as any rejection.
    ("reject", (200, "Rejected", "<p>Run rollback-v1-&#x27;17 is rejected. Production stays as it is.</p>")),
])
def test_the_result_of_a_rollback_decision(approval_api, decision, expected):
    page = approval_api.delivered({"decision": decision, "summary": ROLLBACK})
    assert (page.status, page.title, page.body) == expected


def test_an_approved_run_is_not_called_a_rollback(approval_api):
    page = approval_api.delivered({"decision": "approve", "summary": {**ROLLBACK, "kind": "approval"}})
    assert page.body == ("<p>Run rollback-v1-&#x27;17 is approved. The pipeline now updates production endpoint "
                         "car &quot;eval&quot;; a notification follows.</p>")


# ---------------------------------------------------------------- the new model against production

VERSUS = {"compared": True, "note": "production endpoint car-prod (InService) answered the same rows",
          "verdict": "accuracy 0.9000 against production's 0.8000: better by 0.1000 (worse by more than 0.0100 fails QA)",
          "rows": 20, "rows_answered_differently": 2,
          "figures": [["accuracy", 0.9, 0.8], ["good's F1", 1.0, None], ["<macro> F1", 0.85, 0.7]],
          "examples": [{"truth": "acc", "new_model": "acc", "production": "un'acc", "features": ["high", '"med"', "a&b"]},
                       # A regression answer: floats with four decimals, anything else as it is.
                       {"truth": 3.5, "new_model": 2.25, "production": 4}]}
VERSUS_HEAD = ("<h2>Versus production</h2><p>production endpoint car-prod (InService) answered the same rows.</p>"
               "<p><strong>accuracy 0.9000 against production&#x27;s 0.8000: better by 0.1000 (worse by more than "
               "0.0100 fails QA)</strong></p>")
FIGURES = ("<table><tr><th>figure</th><th>new model</th><th>production</th></tr>"
           "<tr><th>accuracy</th><td>0.9000</td><td>0.8000</td></tr>"
           "<tr><th>good&#x27;s F1</th><td>1.0000</td><td>n/a</td></tr>"
           "<tr><th>&lt;macro&gt; F1</th><td>0.8500</td><td>0.7000</td></tr></table>")


def test_the_comparison_shows_verdict_figures_and_the_rows_answered_differently(approval_api):
    assert approval_api.versus_html({"versus_production": VERSUS}) == (
        VERSUS_HEAD + FIGURES
        + "<h2>Rows answered differently</h2><p>2 of 20 held-out rows; the first 2:</p>"
        "<table><tr><th>true</th><th>new model</th><th>production</th><th>features</th></tr>"
        "<tr><td>acc</td><td>acc</td><td>un&#x27;acc</td><td>high,&quot;med&quot;,a&amp;b</td></tr>"
        "<tr><td>3.5000</td><td>2.2500</td><td>4</td><td></td></tr></table>")


def test_a_comparison_without_differing_rows_has_no_example_table(approval_api):
    versus = {**VERSUS, "rows_answered_differently": 0}
    del versus["examples"]
    assert approval_api.versus_html({"versus_production": versus}) == (
        VERSUS_HEAD + FIGURES + "<h2>Rows answered differently</h2><p>0 of 20 held-out rows.</p>")
    no_figures = {**versus, "figures": None, "examples": []}
    assert approval_api.versus_html({"versus_production": no_figures}) == (
        VERSUS_HEAD + "<table><tr><th>figure</th><th>new model</th><th>production</th></tr></table>"
        "<h2>Rows answered differently</h2><p>0 of 20 held-out rows.</p>")


def test_the_first_run_shows_why_nothing_was_compared(approval_api):
    note = "no production endpoint car's-prod yet: this is the dataset's first model"
    assert approval_api.versus_html({"versus_production": {"compared": False, "note": note}}) == (
        "<h2>Versus production</h2><p>no production endpoint car&#x27;s-prod yet: this is the dataset&#x27;s first "
        "model</p>")


@pytest.mark.parametrize("summary", [{}, {"versus_production": None}, {"versus_production": ["compared"]},
                                     {"versus_production": "compared"}])
def test_a_record_from_before_the_comparison_has_no_section(approval_api, summary):
    assert approval_api.versus_html(summary) == ""


def test_the_comparison_sits_between_the_facts_and_the_details(approval_api):
    summary = {"run_id": "r1", "rows": 20, "gate": {"metric": "accuracy", "value": 0.9, "threshold": 0.7},
               "versus_production": {"compared": False, "note": "n"}, "labels": [], "per_class": {}}
    page = approval_api.summary_html(summary)
    assert "</dl><h2>Versus production</h2><p>n</p><h2>Classification</h2>" in page
