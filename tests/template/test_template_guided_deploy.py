"""`sam deploy --guided` stops on "<function> has no authentication. Is this
okay?" unless the person answers y: the deploy guide (docs/deploy.md) must name every such question
and its answer. Which functions get the question is decided by the pinned SAM
CLI's own code (samcli.commands.deploy.auth_utils.auth_per_resource, what
guided_context.prompt_authorization asks about), run here on template.yaml."""
from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

import template_support  # noqa: F401  (puts scripts/ on sys.path)
import deploy
from template_support import REPO_ROOT

PROBE = textwrap.dedent('''
    import json, sys
    from samcli.commands.deploy.auth_utils import auth_per_resource
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
    stacks, _ = SamLocalStackProvider.get_stacks(sys.argv[1], parameter_overrides={}, global_parameter_overrides={})
    print(json.dumps(auth_per_resource(stacks)))
''')


@pytest.fixture(scope="module")
def unauthenticated() -> list[str]:
    """One entry per question SAM CLI asks (a function with two Api events is asked twice)."""
    command = [deploy.uv_executable(), "tool", "run", "--python", "3.11",
               "--from", f"aws-sam-cli=={deploy.SAM_CLI_VERSION}", "python", "-c", PROBE, str(REPO_ROOT / "template.yaml")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert result.returncode == 0, f"could not run the pinned SAM CLI (needs PyPI once): {result.stderr[-2000:]}"
    return [resource for resource, has_auth in json.loads(result.stdout.strip().splitlines()[-1]) if not has_auth]


def test_the_readme_answers_every_authentication_question_of_the_guided_deploy(unauthenticated):
    readme = (REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert unauthenticated, "SAM CLI asks about no function: drop the README's answer"
    for resource in sorted(set(unauthenticated)):
        assert f"{resource} has no authentication. Is this okay? [y/N]" in readme, resource
    assert "**Answer `y` both times**" in readme and unauthenticated.count("ApprovalApiFunction") == 2
    assert "no authorizer on purpose" in readme
