"""The README's diagram and docs/architecture.md's resource list follow the
definition and the template."""
from __future__ import annotations

import json
import re

import template_support  # noqa: F401  (puts scripts/ on sys.path)
import asl_diagram
from template_support import REPO_ROOT


def test_readme_diagram_is_the_one_generated_from_the_definition():
    text = (REPO_ROOT / "README.md").read_text()
    block = asl_diagram.current_readme_block(text)
    assert block is not None, "README.md lost its generated diagram markers"
    assert block == asl_diagram.readme_block(asl_diagram.generate()), (
        "README.md's diagram is stale: run python scripts/asl_diagram.py --write")


def test_diagram_draws_every_state_and_transition(definition):
    diagram = asl_diagram.mermaid(definition)
    collapsed = {name for names in asl_diagram.catch_only_recorders(definition["States"]).values() for name in names}
    for name, state in definition["States"].items():
        if name in collapsed:
            continue
        assert re.search(rf"^    {asl_diagram.node_id(name)}[\[\(\{{]", diagram, re.M), f"state {name} is not drawn"
        for target in [state.get("Next"), state.get("Default"), *[c["Next"] for c in state.get("Choices", [])],
                       *[c["Next"] for c in state.get("Catch", [])]]:
            if target:
                target_id = asl_diagram.node_id(target) if target not in collapsed else "RecordFailure_"
                assert re.search(rf"^    {asl_diagram.node_id(name)} -.*{target_id}", diagram, re.M), (name, target)


def test_diagram_changes_when_the_definition_does(definition):
    changed = json.loads(json.dumps(definition))
    changed["States"]["RunQATests"]["Next"] = "DeployProduction"
    assert asl_diagram.mermaid(changed) != asl_diagram.mermaid(definition)


def test_architecture_doc_lists_every_deployed_resource(template):
    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Deployed resources", 1)
    assert len(section) == 2, "docs/architecture.md has no '## Deployed resources' section"
    listed = set(re.findall(r"`([A-Z][A-Za-z0-9]+)`", section[1].split("\n## ", 1)[0]))
    missing = set(template["Resources"]) - listed
    assert not missing, f"resources the doc does not describe: {sorted(missing)}"
    outputs = set(template["Outputs"]) - listed
    assert not outputs, f"outputs the doc does not list: {sorted(outputs)}"


def test_readme_deploy_section_names_what_a_user_needs():
    text = (REPO_ROOT / "README.md").read_text()
    deploy = text.split("## Deploy to AWS", 1)[1].split("\n## ", 1)[0]
    for needed in ("make deploy", "Python 3.13", "sam build", "sam deploy --guided", "aws s3 cp",
                   '{"input_uri"', "sam delete", "scripts/deploy.py teardown", "Subscription Confirmation"):
        assert needed in deploy, needed
    for marker in ("<!-- SECTION:deploy -->", "<!-- SECTION:architecture -->", "<!-- SECTION:costs -->"):
        assert marker not in text, f"{marker} was not replaced"
