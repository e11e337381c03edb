"""The approval page's pictures, as inline SVG built from the QA report: the confusion matrix as a
heat map (classification) and the residuals against the predictions (regression). No script and
nothing fetched: the page stays one self-contained document (the saved copy too). Values from the
run (labels) are escaped like the rest of the page (pipeline_common.text.printable, then XML).
"""
from __future__ import annotations

import html
import math

from pipeline_common.text import printable

_FONT = 'font-family="sans-serif" font-size="13"'
_DARK = (31, 95, 168)  # a full row share


_LABEL_CHARACTERS = 24


def _escape(value) -> str:
    return html.escape(printable(str(value)), quote=True)


def _label(value) -> str:
    """A class name as the figure writes it: cut to fit the space the layout leaves for it."""
    text = printable(str(value))
    return html.escape(text if len(text) <= _LABEL_CHARACTERS else text[:_LABEL_CHARACTERS - 1] + "\u2026", quote=True)


def _shade(share: float) -> str:
    share = min(1.0, max(0.0, share))
    red, green, blue = (round(255 + (c - 255) * share) for c in _DARK)
    return f"rgb({red},{green},{blue})"


def confusion_svg(labels: list, matrix: list[list[int]]) -> str:
    """A heat map: one square per (true, predicted) pair, shaded by its share of the true class's rows
    (the recall on the diagonal), its count written inside."""
    if not labels or not matrix or len(matrix) != len(labels):
        return ""
    cell = 52 if len(labels) <= 6 else 36
    longest = min(_LABEL_CHARACTERS, max(len(printable(str(label))) for label in labels))
    # A column label is written up and to the right at 45 degrees: about 8 px a character, times 0.71
    # across and up; a row label reads leftwards from the matrix.
    slant = 8 * longest * 0.71
    left = 28 + 8 * longest
    top = 36 + slant
    size = cell * len(labels)
    width, height = round(left + size + max(16, slant - cell / 2 + 8)), round(top + size + 16)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="figure confusion" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="Confusion matrix as a heat map">',
             "<title>Confusion matrix: rows are the true class, columns the predicted class; darker is a larger "
             "share of the true class</title>",
             f'<text x="{left + size / 2}" y="16" text-anchor="middle" {_FONT} font-weight="bold">predicted</text>',
             f'<text x="14" y="{top + size / 2}" text-anchor="middle" {_FONT} font-weight="bold" '
             f'transform="rotate(-90 14 {top + size / 2})">true</text>']
    for j, label in enumerate(labels):
        x = left + j * cell + cell / 2
        parts.append(f'<text x="{x}" y="{top - 8}" text-anchor="start" {_FONT} '
                     f'transform="rotate(-45 {x} {top - 8})">{_label(label)}</text>')
    for i, (label, row) in enumerate(zip(labels, matrix)):
        y = top + i * cell
        total = sum(row) or 1
        parts.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4}" text-anchor="end" {_FONT}>{_label(label)}</text>')
        for j, count in enumerate(row):
            share = count / total
            ink = "#ffffff" if share > 0.55 else "#111111"
            parts.append(f'<rect x="{left + j * cell}" y="{y}" width="{cell}" height="{cell}" fill="{_shade(share)}" '
                         f'stroke="#888888" stroke-width="0.5"><title>true {_escape(label)}, predicted '
                         f'{_escape(labels[j])}: {int(count)} ({share:.0%} of the true class)</title></rect>')
            parts.append(f'<text x="{left + j * cell + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle" '
                         f'{_FONT} fill="{ink}">{int(count)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _ticks(low: float, high: float) -> list[float]:
    if not math.isfinite(low) or not math.isfinite(high) or high <= low:
        return [low]
    step = 10 ** math.floor(math.log10((high - low) / 4))
    for factor in (1, 2, 5, 10):
        if (high - low) / (step * factor) <= 5:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + k * step for k in range(int((high - first) / step) + 1)]


def _number(value: float) -> str:
    return f"{value:.4g}"


def residual_svg(points: list) -> str:
    """The residual (true - predicted) of each scored row against its prediction, with the zero line."""
    points = [(float(p), float(r)) for p, r in points or [] if math.isfinite(float(p)) and math.isfinite(float(r))]
    if not points:
        return ""
    width, height, left, right, top, bottom = 520, 320, 64, 16, 28, 44
    xs, ys = [p for p, _ in points], [r for _, r in points]
    x_low, x_high = min(xs), max(xs)
    bound = max(abs(min(ys)), abs(max(ys))) or 1.0
    y_low, y_high = -bound * 1.05, bound * 1.05
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    plot_w, plot_h = width - left - right, height - top - bottom

    def x_of(value: float) -> float:
        return left + (value - x_low) / (x_high - x_low) * plot_w

    def y_of(value: float) -> float:
        return top + (y_high - value) / (y_high - y_low) * plot_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="figure residuals" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="Residuals against predictions">',
             f"<title>Residual (true - predicted) of {len(points)} held-out rows against the prediction</title>",
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#ffffff" stroke="#888888"/>',
             f'<text x="{left + plot_w / 2}" y="18" text-anchor="middle" {_FONT} font-weight="bold">residual '
             f'(true - predicted) against the prediction, {len(points)} rows</text>']
    for tick in _ticks(x_low, x_high):
        x = x_of(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 4}" stroke="#555555"/>')
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 18}" text-anchor="middle" {_FONT}>{_number(tick)}</text>')
    for tick in _ticks(y_low, y_high):
        y = y_of(tick)
        parts.append(f'<line x1="{left - 4}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="#555555"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>{_number(tick)}</text>')
    parts.append(f'<line x1="{left}" y1="{y_of(0):.1f}" x2="{left + plot_w}" y2="{y_of(0):.1f}" stroke="#c0392b" '
                 'stroke-width="1.5"/>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle" {_FONT}>predicted</text>')
    parts += [f'<circle cx="{x_of(p):.1f}" cy="{y_of(r):.1f}" r="3" fill="{_shade(0.85)}" fill-opacity="0.7"/>'
              for p, r in points]
    parts.append("</svg>")
    return "".join(parts)
