"""`make lint`'s checks as tests: each pinned tool must pass on the real files."""
from __future__ import annotations

import pytest

import template_support  # noqa: F401  (puts scripts/ on sys.path)
import lint


@pytest.fixture(scope="module")
def checkov_result():
    return lint.checkov()


def test_cfn_lint_is_clean():
    result = lint.cfn_lint()
    assert result.ok, result.output


def test_sam_validate_lint_is_clean():
    result = lint.sam_validate()
    assert result.ok, result.output


def test_asl_validator_accepts_the_definition():
    result = lint.asl_validator()
    assert result.ok, result.output


def test_checkov_finds_no_failed_check(checkov_result):
    assert checkov_result.ok, checkov_result.output
    assert checkov_result.details["passed"] > 100, "checkov evaluated almost nothing: did it read the template?"


def test_every_checkov_skip_is_justified_next_to_its_resource(checkov_result, template):
    declared = {}
    for logical_id, resource in template["Resources"].items():
        for skip in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip") or []:
            declared[(skip["id"], logical_id)] = skip.get("comment", "")
    unjustified = [key for key, comment in declared.items() if len(comment.split()) < 5]
    assert not unjustified, f"skips without a reason in the template: {unjustified}"
    used = {(check, resource.split(".")[-1]) for check, resource, _ in checkov_result.details["skipped"]}
    stale = sorted(set(declared) - used)
    assert not stale, f"skips that suppress nothing (the check does not apply here; remove them): {stale}"
    undeclared = sorted(used - set(declared))
    assert not undeclared, f"checks skipped without a Metadata entry: {undeclared}"
