"""Fixtures for the template's tests (helpers live in template_support.py)."""
from __future__ import annotations

import json

import pytest
from template_support import REPO_ROOT, Resolver, load_template


@pytest.fixture(scope="session")
def template() -> dict:
    return load_template(REPO_ROOT / "template.yaml")


@pytest.fixture(scope="session")
def resolver(template) -> Resolver:
    return Resolver(template)


@pytest.fixture(scope="session")
def definition() -> dict:
    return json.loads((REPO_ROOT / "statemachine" / "pipeline.asl.json").read_text())


@pytest.fixture(scope="session")
def definition_text() -> str:
    return (REPO_ROOT / "statemachine" / "pipeline.asl.json").read_text()


@pytest.fixture(scope="session")
def functions(template) -> dict[str, dict]:
    """{logical id: resource} of the template's Lambda functions."""
    return {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
