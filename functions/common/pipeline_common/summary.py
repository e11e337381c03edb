"""What the approver reads of a run or a rollback: one list of sections, built
from the summary request_approval stores, rendered as plain text for the
approval email and as HTML for the approval page.

A section is a heading and blocks: key-value fields, paragraphs, tables.
Where the email and the page word a fact differently, the model holds both
wordings side by side (`Words`, `ByMedium`), and a block or field shown in
one medium only says so (`only`), so one builder states everything either
reader sees, in one order.

Values from the run (S3 keys, labels, feature fields) are kept as they are
and escaped by each renderer: control and format characters become visible
escapes in both (pipeline_common.text), and the page HTML-escapes them on top.
The summary's own wording (`Words`) is never escaped: its HTML is markup.
"""
from __future__ import annotations

import html
from dataclasses import dataclass

from pipeline_common.approvals import format_metric
from pipeline_common.figures import confusion_svg, residual_svg
from pipeline_common.text import printable

TEXT, HTML = "text", "html"
# The email's field labels are padded to one column: "Dataset:    car".
_LABEL_WIDTH = 11
_SAME_LINE = "    "
SHORTENED_TO = 60


# ---------------------------------------------------------------- the model

@dataclass(frozen=True)
class Words:
    """The summary's own wording. `html` (markup, written as is) defaults to
    `text`; an empty string shows nothing in that medium."""
    text: str
    html: str | None = None


@dataclass(frozen=True)
class ByMedium:
    """The same fact worded for each medium: two sequences of pieces."""
    text: tuple
    html: tuple


@dataclass(frozen=True)
class Strong:
    """Pieces the page sets in bold."""
    pieces: tuple


@dataclass(frozen=True)
class Shortened:
    """A long value (a row's feature fields) the email cuts to SHORTENED_TO characters."""
    value: object


@dataclass(frozen=True)
class Field:
    label: Words
    value: tuple  # pieces: Words, ByMedium, Strong or values from the run
    only: str | None = None
    same_line: bool = False  # the email continues the previous field's line
    indent: int = 0  # the email's spaces before the label


@dataclass(frozen=True)
class Fields:
    fields: tuple


@dataclass(frozen=True)
class Paragraph:
    pieces: tuple
    only: str | None = None


@dataclass(frozen=True)
class Table:
    header: tuple  # cells: a value, Words or Shortened
    rows: tuple
    row_heads: bool = True  # the page sets each row's first cell as its heading
    empty_text: str = ""  # what the email shows for a table without columns


@dataclass(frozen=True)
class Figure:
    """A picture on the page only (inline SVG markup from pipeline_common.figures, which escapes the
    run's values itself), with its caption; the email has the same figures as a table."""
    svg: str
    caption: str


@dataclass(frozen=True)
class Section:
    heading: Words | None
    blocks: tuple
    only: str | None = None


# ---------------------------------------------------------------- text (the email)

def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).rjust(widths[i]) for i, cell in enumerate(row)) for row in [header, *rows]]
    return "\n".join(lines)


def shorten(text: str, limit: int = SHORTENED_TO) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _text(pieces) -> str:
    out = []
    for piece in pieces:
        if isinstance(piece, Words):
            out.append(piece.text)
        elif isinstance(piece, ByMedium):
            out.append(_text(piece.text))
        elif isinstance(piece, Strong):
            out.append(_text(piece.pieces))
        elif isinstance(piece, Shortened):
            out.append(shorten(printable(str(piece.value))))
        else:
            out.append(printable(str(piece)))
    return "".join(out)


def text_of(*pieces) -> str:
    """Pieces as the email writes them."""
    return _text(pieces)


def field_text(field: Field) -> str:
    return " " * field.indent + f"{field.label.text}:".ljust(_LABEL_WIDTH) + " " + _text(field.value)


def _text_block(block) -> list[str]:
    if isinstance(block, Fields):
        lines: list[str] = []
        for field in block.fields:
            if field.only == HTML:
                continue
            if field.same_line and lines:
                lines[-1] += f"{_SAME_LINE}{field.label.text}: {_text(field.value)}"
            else:
                lines.append(field_text(field))
        return lines
    if isinstance(block, Paragraph):
        return [] if block.only == HTML else [_text(block.pieces)]
    if isinstance(block, Figure):
        return []
    if not block.header:
        return [block.empty_text]
    return [text_table([_text((cell,)) for cell in block.header],
                       [[_text((cell,)) for cell in row] for row in block.rows])]


def text_lines(sections) -> list[str]:
    """The sections as the email's lines (a table is one multi-line entry), a blank line between sections."""
    lines: list[str] = []
    for section in sections:
        if section.only == HTML:
            continue
        heading = [section.heading.text] if section.heading and section.heading.text else []
        own = heading + [line for block in section.blocks for line in _text_block(block)]
        if own:
            lines.extend(([""] if lines else []) + own)
    return lines


# ---------------------------------------------------------------- HTML (the page)

def html_value(value) -> str:
    """A value for the page: control and format characters made visible, then HTML-escaped."""
    return html.escape(printable(value), quote=True)


def _markup(words: Words) -> str:
    return words.text if words.html is None else words.html


def _html(pieces) -> str:
    out = []
    for piece in pieces:
        if isinstance(piece, Words):
            out.append(_markup(piece))
        elif isinstance(piece, ByMedium):
            out.append(_html(piece.html))
        elif isinstance(piece, Strong):
            out.append(f"<strong>{_html(piece.pieces)}</strong>")
        elif isinstance(piece, Shortened):
            out.append(html_value(piece.value))
        else:
            out.append(html_value(piece))
    return "".join(out)


def _html_block(block) -> str:
    if isinstance(block, Fields):
        rows = "".join(f"<dt>{_markup(field.label)}</dt><dd>{_html(field.value)}</dd>"
                       for field in block.fields if field.only != TEXT)
        return f"<dl>{rows}</dl>"
    if isinstance(block, Paragraph):
        return "" if block.only == TEXT else f"<p>{_html(block.pieces)}</p>"
    if isinstance(block, Figure):
        return f"<figure>{block.svg}<figcaption>{block.caption}</figcaption></figure>" if block.svg else ""
    head = "".join(f"<th>{_html((cell,))}</th>" for cell in block.header)
    body = "".join(
        "<tr>" + "".join((f"<th>{_html((cell,))}</th>" if i == 0 and block.row_heads else f"<td>{_html((cell,))}</td>")
                         for i, cell in enumerate(row)) + "</tr>"
        for row in block.rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(sections) -> str:
    parts = []
    for section in sections:
        if section.only == TEXT:
            continue
        heading = _markup(section.heading) if section.heading else ""
        parts.append((f"<h2>{heading}</h2>" if heading else "") + "".join(_html_block(b) for b in section.blocks))
    return "".join(parts)


# ---------------------------------------------------------------- a run's approval

def is_rollback(summary: dict) -> bool:
    return summary.get("kind") == "rollback"


def summary_sections(summary: dict) -> list[Section]:
    return rollback_sections(summary) if is_rollback(summary) else approval_sections(summary)


def approval_sections(summary: dict) -> list[Section]:
    details = regression_sections if summary.get("problem_type") == "regression" else classification_sections
    return [intro_section(summary), facts_section(summary), *versus_sections(summary), *details(summary)]


def intro_section(summary: dict) -> Section:
    # The page says the same in its title and its Run and Production endpoint fields.
    return Section(None, (Paragraph((
        Words("Run "), summary.get("run_id"),
        Words(" passed QA and waits for your decision before it replaces\nproduction endpoint "),
        summary.get("production_endpoint"), Words("."))),), only=TEXT)


def gate_of_summary(summary: dict) -> dict:
    # Records written before issue 11 hold accuracy and threshold only (higher is better: the reader's default).
    return summary.get("gate") or {"metric": "accuracy", "value": summary.get("accuracy"),
                                   "threshold": summary.get("threshold")}


def gate_field(summary: dict) -> Field:
    gate = gate_of_summary(summary)
    comparison = Words(">=", "&ge;") if gate.get("higher_is_better", True) else Words("<=", "&le;")
    source = (Words(", threshold from "), gate["threshold_source"]) if gate.get("threshold_source") else ()
    return Field(Words("Gate", "Quality gate"), (
        gate.get("metric"), Words(" "), format_metric(gate.get("value")), Words(" "), comparison, Words(" "),
        format_metric(gate.get("threshold")), Words(" on "), summary.get("rows"), Words(" held-out rows"),
        *sample_pieces(summary), *source))


def sample_pieces(summary: dict) -> tuple:
    """How QA chose its rows, when it did not score them all: e.g. " (stratified random by label sample of 12082)"."""
    sample = summary.get("sample")
    if not isinstance(sample, dict) or sample.get("method") in (None, "all"):
        return ()
    return Words(" ("), sample.get("method"), Words(" sample of "), sample.get("of"), Words(")")


def _versus(summary: dict) -> dict | None:
    versus = summary.get("versus_production")
    return versus if isinstance(versus, dict) else None


def production_field(summary: dict) -> Field:
    # The page shows the same in its "Versus production" section.
    versus = _versus(summary) or {}
    return Field(Words("Production"), (versus.get("verdict") if versus.get("compared") else versus.get("note"),),
                 only=TEXT)


def facts_section(summary: dict) -> Section:
    dataset, kind, label = summary.get("dataset"), summary.get("problem_type"), summary.get("label_name")
    return Section(None, (Fields((
        Field(Words("Run"), (summary.get("run_id"),), only=HTML),
        Field(Words("Dataset"), (ByMedium(
            text=(dataset, Words(" ("), kind, Words(", label "), label, Words(")")),
            html=(dataset or "not recorded", Words(" ("), kind or "multiclass",
                  *((Words(", label "), label) if label else ()), Words(")"))),)),
        Field(Words("Input"), (summary.get("input_uri"),)),
        Field(Words("Production endpoint"), (summary.get("production_endpoint"),), only=HTML),
        gate_field(summary),
        production_field(summary),
        Field(Words("QA report"), (summary.get("report_uri"),)),
    )),))


def answer(value):
    """A label as it is; a regression answer with the metrics' four decimals."""
    return format_metric(value) if isinstance(value, float) else value


def versus_sections(summary: dict) -> list[Section]:
    """Champion versus challenger, as request_approval's versus_production recorded it."""
    versus = _versus(summary)
    if versus is None:
        return []
    if not versus.get("compared"):
        # The email gives the reason on its Production line.
        return [Section(Words("", "Versus production"), (Paragraph((versus.get("note"),)),), only=HTML)]
    examples = versus.get("examples") or []
    figures = Table(("figure", "new model", "production"),
                    tuple((name, format_metric(new), format_metric(old)) for name, new, old in versus.get("figures") or []))
    differing = [Paragraph((ByMedium(
        text=(Words("Rows answered differently: "), versus.get("rows_answered_differently"), Words(" of "),
              versus.get("rows")),
        html=(versus.get("rows_answered_differently"), Words(" of "), versus.get("rows"), Words(" held-out rows"),
              Words(f"; the first {len(examples)}:" if examples else "."))),))]
    if examples:
        differing.append(Table(("true", "new model", "production", "features"),
                               tuple((answer(e.get("truth")), answer(e.get("new_model")), answer(e.get("production")),
                                      Shortened(",".join(e.get("features") or []))) for e in examples),
                               row_heads=False))
    return [
        Section(Words("Versus production, on the same held-out rows", "Versus production"), (
            Paragraph((versus.get("note"), Words(".")), only=HTML),
            Paragraph((Strong((versus.get("verdict"),)),), only=HTML),
            figures)),
        Section(Words("", "Rows answered differently"), tuple(differing)),
    ]


def classification_sections(summary: dict) -> list[Section]:
    labels = summary.get("labels") or []
    metrics = [Field(Words("Accuracy"), (format_metric(summary.get("accuracy")),)),
               Field(Words("macro F1", "Macro F1"), (format_metric(summary.get("macro_f1")),), same_line=True)]
    if summary.get("problem_type") == "binary":
        metrics.append(Field(Words("ROC AUC"), (
            format_metric(summary.get("roc_auc")), Words(" (from the endpoint's labels at threshold "),
            format_metric(summary.get("binary_threshold"), 2), Words(" for "), summary.get("positive_label"),
            Words(": one ROC point, = balanced accuracy)", ": one ROC point, equal to balanced accuracy)"))))
    per_class = Table(
        ("class", "precision", "recall", Words("f1", "F1"), "support"),
        tuple((label, format_metric(stats.get("precision"), 3), format_metric(stats.get("recall"), 3),
               format_metric(stats.get("f1"), 3), stats.get("support"))
              for label, stats in (summary.get("per_class") or {}).items()))
    matrix = Table((Words("true \\ predicted", ""), *labels),
                   tuple((label, *row) for label, row in zip(labels, summary.get("confusion_matrix") or [])))
    heat_map = Figure(confusion_svg(labels, summary.get("confusion_matrix") or []),
                      "Each square's shade is its share of the true class's rows; the diagonal is each class's recall.")
    return [
        Section(Words("", "Classification"), (Fields(tuple(metrics)),)),
        Section(Words("", "Per class"), (per_class,)),
        Section(Words("Confusion matrix (rows: true class, columns: predicted class)", "Confusion matrix"), (
            Paragraph((Words("Rows: true class. Columns: predicted class."),), only=HTML), heat_map, matrix)),
    ]


def _by_percent(item: tuple[str, object]) -> tuple:
    """p05 before p25 before p100: the report is stored with sorted keys (put_json), which orders them as text."""
    name = item[0]
    try:
        return (0, float(name[1:] if name.startswith("p") else name))
    except ValueError:
        return (1, name)


def regression_sections(summary: dict) -> list[Section]:
    residuals = summary.get("residuals") or {}
    quantiles = dict(sorted((residuals.get("quantiles") or {}).items(), key=_by_percent))
    metrics = Fields((
        Field(Words("RMSE"), (format_metric(summary.get("rmse")),)),
        Field(Words("MAE"), (format_metric(summary.get("mae")),), same_line=True),
        Field(Words("R-squared"), (format_metric(summary.get("r2")),), same_line=True),
        Field(Words("Label", "Held-out label"), (
            Words("mean "), format_metric(summary.get("label_mean")), Words(", std "),
            format_metric(summary.get("label_std")), Words(" on the held-out rows", ""))),
    ))
    names = summary.get("feature_names") or []

    def named(fields: list) -> str:
        # Each field with its column's name (a report from before feature_names: the bare CSV record).
        if len(names) != len(fields):
            return ",".join(fields)
        return ", ".join(f"{name}={value}" for name, value in zip(names, fields))

    largest = Table(("test row", "true", "predicted", "residual", "features"),
                    tuple((e.get("row"), format_metric(e.get("truth")), format_metric(e.get("predicted")),
                           format_metric(e.get("residual")), Shortened(named(e.get("features") or [])))
                          for e in summary.get("largest_errors") or []))
    return [
        Section(Words("", "Regression"), (metrics,)),
        Section(Words("", "Residuals"), (
            Paragraph((Words("Residuals (true - predicted): mean ", "True minus predicted; mean "),
                       format_metric(residuals.get("mean")), Words("", "."))),
            Table(tuple(quantiles), (tuple(format_metric(value) for value in quantiles.values()),), row_heads=False,
                  empty_text="(none)"),
            Figure(residual_svg(summary.get("residual_points") or []),
                   "Each point is one held-out row: a model without bias scatters evenly around the red zero line."))),
        Section(Words("Largest errors"), (largest,)),
    ]


# ---------------------------------------------------------------- a rollback's confirmation

def _qa_figures(version: dict) -> tuple:
    pieces: list = []
    for key, value in (version.get("qa") or {}).items():
        pieces += [*((Words(", "),) if pieces else ()), key, Words(" "),
                   format_metric(value) if isinstance(value, float) else value]
    return tuple(pieces) or (Words("none recorded", "no QA figures recorded"),)


def _version_fields(version: dict, text_label: str) -> list[Field]:
    """A registered version: the email indents all but the first line under it."""
    return [
        Field(Words(text_label, "Version"), (ByMedium(
            text=(Words("version "), version.get("version"), Words(", "), version.get("status"), Words(": "),
                  version.get("approval_description")),
            html=(version.get("version"), Words(" ("), version.get("status"), Words(": "),
                  version.get("approval_description"), Words(")"))),)),
        Field(Words("QA"), _qa_figures(version), indent=2),
        Field(Words("Run"), (version.get("run_id"), Words(" on "), version.get("input_uri"),
                             Words(" (version ", " (object version "), version.get("input_version_id"), Words(")")),
              indent=2),
        Field(Words("Glue run", "Glue job run, training job"), (
            version.get("glue_job_run_id"), Words("; training job ", ", "), version.get("training_job")), indent=2),
        Field(Words("QA report"), (version.get("qa_report_uri"),), indent=2),
    ]


def rollback_sections(summary: dict) -> list[Section]:
    """The version a rollback deploys next to what serves now."""
    target, serving = summary.get("target") or {}, summary.get("serving") or {}
    endpoint, group, run_id = summary.get("production_endpoint"), summary.get("model_package_group"), summary.get("run_id")
    unregistered = (Words("a model not in the registry (endpoint config ", "A model not in the registry (endpoint config "),
                    serving.get("endpoint_config"), Words(")", ")."))
    now = ((Words("version "), serving.get("version"), Words(" (run "), serving.get("run_id"), Words(", QA "),
            *_qa_figures(serving), Words(")")) if serving.get("version") else unregistered)
    serving_now = (Fields(tuple(_version_fields(serving, "Version"))) if serving.get("version")
                   else Paragraph(unregistered))
    return [
        Section(None, (Paragraph((ByMedium(
            text=(Words("Someone asked to roll production endpoint "), endpoint, Words(" back to version "),
                  target.get("version"), Words(" of model group "), group, Words(" (rollback run "), run_id,
                  Words(").")),
            html=(Words("Rollback run "), run_id, Words(" asks to deploy an earlier approved version of "), group,
                  Words(" to production endpoint "), endpoint,
                  Words(", through the same blue/green deployment and alarms as any deployment."))),)),)),
        Section(Words("", "Roll back to"), (Fields((
            Field(Words("Now serving"), now, only=TEXT), *_version_fields(target, "Roll back to"))),)),
        Section(Words("Serving now"), (serving_now,), only=HTML),
        # The page says this in its opening paragraph.
        Section(None, (Paragraph((Words("The rollback goes through the same blue/green deployment and alarms as any "
                                        "deployment."),)),), only=TEXT),
    ]
