"""What the documentation says against what the code does, where a reader acts
on it: an input they would type, a file they expect on AWS. Each test reads
every page (README.md and docs/*.md), so a fact stays true wherever it moves."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def page_texts() -> dict[str, str]:
    return {str(page.relative_to(REPO_ROOT)): page.read_text(encoding="utf-8") for page in PAGES}


@pytest.fixture(scope="module")
def lambdas():
    from localmode.lambdas import LocalLambdas

    return LocalLambdas(region="us-east-1")


class _Reads(dict):
    """A dict that records which keys the code under test looked at."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def documented_rollback_keys() -> dict[str, set[str]]:
    """{page: the keys of every `{"rollback": {...}}` execution input it shows}."""
    found: dict[str, set[str]] = {}
    for page, text in page_texts().items():
        for inner in re.findall(r'\{"rollback":\s*\{([^{}]*)\}', text.replace("\n", " ")):
            found.setdefault(page, set()).update(re.findall(r'"(\w+)"\s*:', inner))
    return found


def test_every_key_of_a_documented_rollback_input_is_one_the_pipeline_reads(lambdas):
    """A key nothing reads is dropped silently: a rollback meant for one dataset's endpoint would
    roll back DefaultDataset's. ResolveRollbackDataset (resolve_dataset) and PrepareRollback read the input."""
    documented = documented_rollback_keys()
    assert documented, "no page shows the rollback input any more"
    resolve, prepare = lambdas.module("resolve_dataset"), lambdas.module("prepare_rollback")
    for page, keys in documented.items():
        rollback = _Reads({key: 1 if key == "model_package_version" else "car" for key in keys})
        resolve.requested_dataset({}, {"rollback": rollback}, "input/", "car")
        prepare.requested({"rollback": rollback, "dataset": {"production_endpoint": "car-evaluation"}})
        assert keys <= rollback.read, f"{page} documents rollback keys the pipeline ignores: {sorted(keys - rollback.read)}"


def test_what_the_docs_say_make_deploy_uploads_is_every_dataset_spec():
    """scripts/deploy.py uploads every datasets/*.json (each dataset's runs need its spec on AWS);
    a page naming one spec file as what deploy uploads tells a reader the others are not there."""
    import sys

    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    import deploy

    assert set(deploy.dataset_specs(REPO_ROOT / "datasets").values()) == set((REPO_ROOT / "datasets").glob("*.json"))
    claims = {page: re.findall(r"uploads?\s+(?:every\s+)?`(datasets/[^`]+)`", text.replace("\n", " "))
              for page, text in page_texts().items()}
    assert any(claims.values()), "no page says what make deploy uploads any more"
    for page, paths in claims.items():
        assert all(path == "datasets/*.json" for path in paths), f"{page} says deploy uploads {paths}"


NUMBER_WORDS = {word: n for n, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}


def test_the_number_of_lambda_functions_the_docs_state_is_the_templates():
    from cfnlint.decode import cfn_yaml

    template = cfn_yaml.load(str(REPO_ROOT / "template.yaml"))
    functions = sum(1 for resource in template["Resources"].values()
                    if resource.get("Type") in ("AWS::Serverless::Function", "AWS::Lambda::Function"))
    stated = {page: re.findall(r"\b(\w+) Lambda\s+functions\b", text) for page, text in page_texts().items()}
    counts = {page: [NUMBER_WORDS.get(word.lower(), word) for word in words if word.lower() in NUMBER_WORDS
                     or word.isdigit()] for page, words in stated.items()}
    assert any(counts.values()), "no page states how many Lambda functions the stack has any more"
    for page, numbers in counts.items():
        assert all(int(n) == functions for n in numbers), f"{page} says {numbers} Lambda functions; template.yaml has {functions}"
