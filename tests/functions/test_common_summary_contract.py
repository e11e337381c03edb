"""pipeline_common.summary: the approval summary as sections, rendered for the
email (text) and the page (HTML).

What an approver would notice: a value from the run shown as markup on the
page or as a line of its own in the email; a figure the page shows that the
email leaves out (or the other way round); a field meant for one medium
showing up in the other. The word-for-word texts of both media are pinned in
the request_approval and approval_api tests; these tests pin the model's rules.
"""
from __future__ import annotations

import re

import pytest
from approval_support import approval_api, request_approval  # noqa: F401 (fixtures)
from test_approval_versus_contract import COMPARED
from test_fn_approval_by_type import BINARY_REPORT, REGRESSION_REPORT

from pipeline_common.summary import (
    HTML,
    TEXT,
    ByMedium,
    Field,
    Fields,
    Paragraph,
    Section,
    Shortened,
    Strong,
    Table,
    Words,
    render_html,
    text_lines,
)


def test_run_values_are_escaped_and_the_summarys_own_words_are_not():
    section = Section(Words("Heading"), (Paragraph(("a<b 'c'\n", Words(" (<em>ours</em>)", " <em>ours</em>"),
                                                    Strong(("&",)))),))
    assert render_html([section]) == "<h2>Heading</h2><p>a&lt;b &#x27;c&#x27;\\x0a <em>ours</em><strong>&amp;</strong></p>"
    # In the email a line break in a value is a visible escape: it cannot start a line of its own.
    assert text_lines([section]) == ["Heading", "a<b 'c'\\x0a (<em>ours</em>)&"]


def test_a_field_or_section_for_one_medium_stays_out_of_the_other():
    sections = [
        Section(None, (Fields((Field(Words("Both"), ("1",)), Field(Words("Page"), ("2",), only=HTML),
                               Field(Words("Email"), ("3",), only=TEXT))),)),
        Section(Words("Page only"), (Paragraph(("p",)),), only=HTML),
        Section(Words("Email only", ""), (Paragraph(("e",)),), only=TEXT),
    ]
    assert render_html(sections) == "<dl><dt>Both</dt><dd>1</dd><dt>Page</dt><dd>2</dd></dl><h2>Page only</h2><p>p</p>"
    assert text_lines(sections) == ["Both:       1", "Email:      3", "", "Email only", "e"]


def test_email_fields_align_continue_lines_and_indent():
    fields = Fields((Field(Words("RMSE"), ("1.0",)), Field(Words("MAE"), ("0.5",), same_line=True),
                     Field(Words("Now serving"), ("v2",)), Field(Words("QA"), ("none",), indent=2)))
    assert text_lines([Section(None, (fields,))]) == ["RMSE:       1.0    MAE: 0.5", "Now serving: v2", "  QA:         none"]


def test_tables_by_medium():
    table = Table(("row", Words("f1", "F1"), "features"), ((7, None, Shortened("x" * 61)),), row_heads=True)
    assert render_html([Section(None, (table,))]) == (
        "<table><tr><th>row</th><th>F1</th><th>features</th></tr>"
        f"<tr><th>7</th><td></td><td>{'x' * 61}</td></tr></table>")
    assert text_lines([Section(None, (table,))]) == ["\n".join([
        "row    f1" + "features".rjust(62), "  7  None  " + "x" * 57 + "..."])]
    # A table without columns (no residual quantiles): the email says so, the page shows an empty table.
    empty = Table((), ((),), row_heads=False, empty_text="(none)")
    assert text_lines([Section(None, (empty,))]) == ["(none)"]
    assert render_html([Section(None, (empty,))]) == "<table><tr></tr><tr></tr></table>"


def test_one_fact_worded_for_each_medium():
    section = Section(None, (Paragraph((ByMedium(text=(Words("version "), 3), html=(3, Words(" (registered)"))),)),))
    assert text_lines([section]) == ["version 3"] and render_html([section]) == "<p>3 (registered)</p>"


@pytest.mark.parametrize("report", [BINARY_REPORT, REGRESSION_REPORT,
                                    {**BINARY_REPORT, "problem_type": "multiclass",
                                     "production": {"note": "answered"}, "versus_production": {}}],
                         ids=["binary", "regression", "multiclass"])
def test_the_email_and_the_page_show_the_same_figures(request_approval, approval_api, report):
    event = {"run": {"run_id": "r1", "input_uri": "s3://in/x.csv"}, "names": {"production_endpoint": "p"},
             "qa": {"report_uri": "s3://a/qa.json"}}
    summary = request_approval.approval_summary(event, report)
    if report.get("production"):
        summary["versus_production"] = COMPARED
    _, email = request_approval.approval_email(summary, "https://api", "REF", "t")
    # The page's pictures are drawn from the same figures; their numbers are coordinates.
    page = re.sub(r"<svg.*?</svg>", "", approval_api.summary_html(summary), flags=re.S)

    def figures(text: str) -> set[str]:
        return set(re.findall(r"-?\d+\.\d+", text))

    assert figures(email) and figures(email) == figures(page)


def test_the_gate_line_names_qas_sample_in_both_media_and_nothing_when_every_row_was_scored(request_approval,
                                                                                          approval_api):
    """Issue 22: the approver must know when the figures come from a sample of the test split."""
    event = {"run": {"run_id": "r1", "input_uri": "s3://in/x.csv"}, "names": {"production_endpoint": "p"},
             "qa": {"report_uri": "s3://a/qa.json", "rows": 5000}}
    sampled = {**BINARY_REPORT, "rows": 5000,
               "sample": {"method": "stratified random by label", "rows": 5000, "of": 12082, "seed": 42}}
    summary = request_approval.approval_summary(event, sampled)
    _, email = request_approval.approval_email(summary, "https://api", "REF", "t")
    assert "on 5000 held-out rows (stratified random by label sample of 12082)" in email
    assert "held-out rows (stratified random by label sample of 12082)" in approval_api.summary_html(summary)
    every_row = request_approval.approval_summary(event, {**sampled, "sample": {"method": "all", "rows": 5000,
                                                                                "of": 5000}})
    assert "sample of" not in request_approval.approval_email(every_row, "https://api", "REF", "t")[1]


def test_residual_quantiles_read_in_percent_order_as_the_stored_report_holds_them_as_text():
    # The QA report is stored with sorted keys: p00 p05 p100 p25 ... had reached the email and page (issue 23).
    from pipeline_common.summary import regression_sections

    stored = {"rmse": 1.0, "mae": 0.5, "r2": 0.9, "residuals": {"mean": 0.0, "quantiles": {
        "p00": -3.0, "p05": -2.0, "p100": 4.0, "p25": -1.0, "p50": 0.0, "p75": 1.0, "p95": 2.5}}}
    text = "\n".join(text_lines(regression_sections(stored)))
    header = next(line for line in text.splitlines() if "p00" in line)
    assert header.split() == ["p00", "p05", "p25", "p50", "p75", "p95", "p100"]
    html = render_html(regression_sections(stored))
    assert [html.index(f">{q}<") for q in ("p00", "p05", "p25", "p50", "p75", "p95", "p100")] == sorted(
        html.index(f">{q}<") for q in ("p00", "p05", "p25", "p50", "p75", "p95", "p100"))
