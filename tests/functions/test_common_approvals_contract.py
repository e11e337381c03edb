"""pipeline_common.approvals: the reference an approval link carries, and how the email
and the approval page show QA numbers."""
from __future__ import annotations

import pytest

from pipeline_common import approvals


def test_a_new_reference_is_one_the_approval_api_accepts():
    # request_approval mails it, approval_api checks it: a mismatch makes every link a 404.
    references = {approvals.new_reference() for _ in range(20)}
    assert len(references) == 20
    assert all(approvals.is_wellformed_reference(r) for r in references)


@pytest.mark.parametrize("reference", [
    None,
    43,
    "short",
    "é" * 43,                       # right length, not ASCII: approval_key would fail to encode it
    "a" * 42 + "/",                 # a path separator
    "a" * 43 + "\n",
    "a" * 44,
])
def test_a_malformed_reference_is_refused(reference):
    # approval_api answers 404 for these before hashing; accepted, a non-ASCII one would
    # crash approval_key with a 500.
    assert approvals.is_wellformed_reference(reference) is False


@pytest.mark.parametrize("value, digits, shown", [
    (0.9653, 4, "0.9653"),
    (1, 3, "1.000"),
    (None, 4, "n/a"),      # a QA report without the metric (an older run's report)
    ("0.97", 4, "n/a"),    # a string from a hand-edited report is not formatted as a number
    (True, 4, "n/a"),      # a bool is an int to Python, not a metric
])
def test_metrics_are_shown_with_fixed_digits_or_as_n_a(value, digits, shown):
    assert approvals.format_metric(value, digits) == shown
