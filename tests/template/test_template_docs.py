"""The diagrams (the README's overview, docs/architecture.md's full drawing)
and docs/architecture.md's resource list follow the definition and the
template; the deploy guide names what a user needs."""
from __future__ import annotations

import json
import re

import pytest

import template_support  # noqa: F401  (puts scripts/ on sys.path)
import asl_diagram
from template_support import REPO_ROOT


def test_architecture_diagram_is_the_one_generated_from_the_definition():
    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    block = asl_diagram.current_readme_block(text)
    assert block is not None, "docs/architecture.md lost its generated diagram markers"
    assert block == asl_diagram.readme_block(asl_diagram.generate()), (
        "docs/architecture.md's diagram is stale: run python scripts/asl_diagram.py --write")


def test_readme_overview_is_the_one_generated_from_the_definition():
    text = (REPO_ROOT / "README.md").read_text()
    block = asl_diagram.current_block(text, asl_diagram.OVERVIEW_BEGIN, asl_diagram.OVERVIEW_END)
    assert block is not None, "README.md lost its generated overview markers"
    assert block == asl_diagram.overview_block(asl_diagram.generate_overview()), (
        "README.md's overview is stale: run python scripts/asl_diagram.py --write")
    assert asl_diagram.main(["--check"]) == 0


def test_the_overview_draws_every_task_and_end_and_where_failures_go(definition):
    diagram = asl_diagram.overview(definition)
    states = definition["States"]
    for name, state in states.items():
        drawn = re.search(rf"\b{asl_diagram.node_id(name)}[\[\(]", diagram)
        assert bool(drawn) == (state["Type"] in ("Task", "Succeed", "Fail")), name
    failing = asl_diagram.failure_path(definition)
    assert {"CleanupAfterFailure", "NotifyFailure", "Failed"} <= failing and "Succeeded" not in failing
    # Every step with a Catch of States.ALL is counted on an edge from "a step fails".
    catching = [name for name, state in states.items() if name not in failing
                and any("States.ALL" in c["ErrorEquals"] and c["Next"] in failing for c in state.get("Catch", []))]
    counted = 0
    for label in re.findall(r'Fails\(\["a step fails"\]\) -\.->\|"([^"]+)"\|', diagram):
        counted += int(label.split()[0]) if label.endswith(" steps") else len(label.split(", "))
    assert counted == len(catching) > 0
    # The polling loops and Choice states are passed through: QA is tested after its endpoint is checked.
    assert re.search(r"^    CheckQAEndpoint --> RunQATests", diagram, re.M)
    assert re.search(r'TrainXGBoost -\.->\|"SageMaker.AmazonSageMakerException"\| RecoverTraining', diagram)


def test_overview_changes_when_the_definition_does(definition):
    changed = json.loads(json.dumps(definition))
    changed["States"]["RunQATests"]["Next"] = "DeployProduction"
    assert asl_diagram.overview(changed) != asl_diagram.overview(definition)


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


@pytest.mark.parametrize("page, section", [("docs/deploy.md", None), ("README.md", "## Deploy in five steps")])
def test_readme_deploy_section_names_what_a_user_needs(page, section):
    text = (REPO_ROOT / page).read_text()
    deploy = text.split(section, 1)[1].split("\n## ", 1)[0] if section else text
    for needed in ("make deploy", "Python 3.13", "sam build", "sam deploy --guided", "aws s3 cp",
                   '{"input_uri"', "sam delete", "scripts/deploy.py teardown", "Subscription Confirmation"):
        assert needed in deploy, needed
    for marker in ("<!-- SECTION:deploy -->", "<!-- SECTION:architecture -->", "<!-- SECTION:costs -->"):
        assert marker not in text, f"{marker} was not replaced"
