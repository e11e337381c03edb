"""Fixtures of the local-mode tests."""
from __future__ import annotations

import pytest

from localmode.session import LocalPipeline


@pytest.fixture(scope="module")
def account(tmp_path_factory):
    """One local account (LocalPipeline) per test module, its printed lines kept as `lines`: moto's
    patches allow one at a time in a process."""
    lines: list[str] = []
    with LocalPipeline(tmp_path_factory.mktemp("local-account"), say=lines.append) as pipeline:
        pipeline.lines = lines
        yield pipeline
