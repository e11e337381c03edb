from __future__ import annotations

import logging

import pytest
from moto import mock_aws

from localmode import sfn


@pytest.fixture
def sfn_local():
    """moto with state-machine execution on, and every Task routed to Python handlers."""
    # moto logs every caught task failure as a warning with a stack: the tests assert on outcomes instead.
    logging.getLogger("moto.stepfunctions").setLevel(logging.ERROR)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), sfn.install(retry_time_scale=0.001):
        yield
