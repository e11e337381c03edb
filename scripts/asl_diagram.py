"""Mermaid flowcharts of statemachine/pipeline.asl.json: the whole definition
for docs/architecture.md, and an overview for the README.

The full diagram draws every state and transition of the definition, except
that the per-task failure recorders (Pass states reached only through a
Catch, all leading to the same next state) are drawn as one node: fourteen
identical boxes would hide the flow. Catch edges are dotted, Choice edges
carry their conditions.

The overview draws the Task states and the ends only: a Pass, Choice or Wait
state is passed through (a polling loop becomes the Task it polls with), a
Catch of a named error stays a dotted edge, and whatever only a Catch of
States.ALL reaches (the failure path) hangs off one "a step fails" node whose
edges say how many steps lead there.

    python scripts/asl_diagram.py             # print the full diagram
    python scripts/asl_diagram.py --overview  # print the overview
    python scripts/asl_diagram.py --check     # exit 1 when a page's copy differs
    python scripts/asl_diagram.py --write     # replace both pages' copies
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFINITION = REPO_ROOT / "statemachine" / "pipeline.asl.json"
README = REPO_ROOT / "README.md"
ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"
BEGIN = "<!-- BEGIN GENERATED DIAGRAM: python scripts/asl_diagram.py --write -->"
END = "<!-- END GENERATED DIAGRAM -->"
OVERVIEW_BEGIN = "<!-- BEGIN GENERATED OVERVIEW: python scripts/asl_diagram.py --write -->"
OVERVIEW_END = "<!-- END GENERATED OVERVIEW -->"

_COMPARISONS = {
    "StringEquals": "=", "StringEqualsPath": "=", "NumericEquals": "=", "NumericEqualsPath": "=",
    "BooleanEquals": "=", "BooleanEqualsPath": "=", "NumericLessThan": "<", "NumericLessThanPath": "<",
    "NumericGreaterThan": ">", "NumericGreaterThanPath": ">", "NumericLessThanEquals": "<=",
    "NumericLessThanEqualsPath": "<=", "NumericGreaterThanEquals": ">=", "NumericGreaterThanEqualsPath": ">=",
    "StringMatches": "matches",
}
_TYPE_TESTS = {"IsPresent": "present", "IsString": "a string", "IsNumeric": "a number", "IsBoolean": "a boolean",
               "IsNull": "null", "IsTimestamp": "a timestamp"}


def node_id(state_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", state_name)


def escape(text: str) -> str:
    return text.replace('"', "#quot;")


def path_label(path: str) -> str:
    """`$.production_status.endpoint_config_name` -> `production_status.endpoint_config_name`."""
    return path[2:] if path.startswith("$.") else path


def condition(rule: dict) -> str:
    if "And" in rule:
        return " and ".join(condition(r) for r in rule["And"])
    if "Or" in rule:
        return "(" + " or ".join(condition(r) for r in rule["Or"]) + ")"
    if "Not" in rule:
        return "not " + condition(rule["Not"])
    variable = path_label(rule["Variable"])
    for key, word in _TYPE_TESTS.items():
        if key in rule:
            return f"{variable} {'is' if rule[key] else 'is not'} {word}"
    for key, symbol in _COMPARISONS.items():
        if key in rule:
            value = rule[key]
            shown = path_label(value) if key.endswith("Path") else value
            return f"{variable} {symbol} {shown}"
    raise ValueError(f"unsupported Choice rule: {sorted(rule)}")


def resource_label(resource: str) -> str:
    """`arn:aws:states:::aws-sdk:sagemaker:describeEndpoint` -> `sagemaker:describeEndpoint`."""
    short = resource.split(":::", 1)[-1]
    return short.removeprefix("aws-sdk:")


def catch_only_recorders(states: dict) -> dict[str, list[str]]:
    """{next state: [recorder names]} for Pass states that only Catch clauses reach."""
    reached_otherwise = set()
    reached_by_catch = set()
    for state in states.values():
        for key in ("Next", "Default"):
            if key in state:
                reached_otherwise.add(state[key])
        for choice in state.get("Choices", []):
            reached_otherwise.add(choice["Next"])
        for catch in state.get("Catch", []):
            reached_by_catch.add(catch["Next"])
    groups: dict[str, list[str]] = {}
    for name in sorted(reached_by_catch - reached_otherwise):
        state = states[name]
        if state["Type"] == "Pass" and "Next" in state:
            groups.setdefault(state["Next"], []).append(name)
    return {target: names for target, names in groups.items() if len(names) > 1}


def mermaid(definition: dict) -> str:
    states = definition["States"]
    groups = catch_only_recorders(states)
    collapsed = {name: f"RecordFailure_{node_id(target)}" for target, names in groups.items() for name in names}

    def target_id(name: str) -> str:
        return collapsed.get(name, node_id(name))

    lines = ["flowchart TD", f"    Start((start)) --> {node_id(definition['StartAt'])}"]
    for name, state in states.items():
        if name in collapsed:
            continue
        kind = state["Type"]
        ident = node_id(name)
        if kind == "Task":
            lines.append(f'    {ident}["{escape(name)}<br/>{escape(resource_label(state["Resource"]))}"]')
        elif kind == "Choice":
            lines.append(f'    {ident}{{"{escape(name)}"}}')
        elif kind == "Wait":
            lines.append(f'    {ident}(["{escape(name)}"])')
        elif kind in ("Succeed", "Fail"):
            lines.append(f'    {ident}((("{escape(name)}")))')
        else:
            lines.append(f'    {ident}["{escape(name)}"]')
    for target, names in groups.items():
        label = f"Record(State)Failure<br/>{len(names)} Pass states, one per task"
        lines.append(f'    RecordFailure_{node_id(target)}[/"{label}"/]')

    for name, state in states.items():
        if name in collapsed:
            continue
        ident = node_id(name)
        for choice in state.get("Choices", []):
            lines.append(f'    {ident} -->|"{escape(condition(choice))}"| {target_id(choice["Next"])}')
        if "Default" in state:
            lines.append(f'    {ident} -->|otherwise| {target_id(state["Default"])}')
        if "Next" in state:
            lines.append(f"    {ident} --> {target_id(state['Next'])}")
        for catch in state.get("Catch", []):
            errors = ", ".join(catch["ErrorEquals"])
            lines.append(f'    {ident} -.->|"{escape(errors)}"| {target_id(catch["Next"])}')
    for target, names in groups.items():
        lines.append(f"    RecordFailure_{node_id(target)} --> {node_id(target)}")
    return "\n".join(lines) + "\n"


def _successors(state: dict, catches: bool = True) -> list[tuple[str, str | None]]:
    """(next state, Catch label or None) of every transition out of `state`."""
    found = [(choice["Next"], None) for choice in state.get("Choices", [])]
    found += [(state[key], None) for key in ("Default", "Next") if key in state]
    if catches:
        found += [(c["Next"], ", ".join(c["ErrorEquals"])) for c in state.get("Catch", [])]
    return found


def _catches_everything(label: str | None) -> bool:
    return label is not None and "States.ALL" in label.split(", ")


def failure_path(definition: dict) -> set[str]:
    """The states only a Catch of States.ALL leads to (from anywhere)."""
    states = definition["States"]
    normal, todo = set(), [definition["StartAt"]]
    while todo:
        name = todo.pop()
        if name in normal:
            continue
        normal.add(name)
        todo += [target for target, label in _successors(states[name]) if not _catches_everything(label)]
    return set(states) - normal


def _drawn(state: dict) -> bool:
    return state["Type"] in ("Task", "Succeed", "Fail")


def _reached(states: dict, start: str, inside: set[str]) -> list[tuple[str, str | None]]:
    """The drawn states `start` leads to within `inside`, passing through Pass, Choice and Wait states."""
    found, seen = [], set()
    todo = [(target, label) for target, label in _successors(states[start]) if not _catches_everything(label)
            or (start in inside and target in inside)]
    while todo:
        name, label = todo.pop(0)
        if name not in inside or name in seen:
            continue
        seen.add(name)
        if _drawn(states[name]):
            found.append((name, label))
        else:
            todo += [(target, label) for target, next_label in _successors(states[name])
                     if not _catches_everything(next_label) or target in inside]
    return found


def overview(definition: dict) -> str:
    states = definition["States"]
    failing = failure_path(definition)
    normal = set(states) - failing
    declared: set[str] = set()

    def node(name: str) -> str:
        ident = node_id(name)
        if ident in declared:
            return ident
        declared.add(ident)
        state = states[name]
        if state["Type"] == "Task":
            return f'{ident}["{escape(name)}<br/>{escape(resource_label(state["Resource"]))}"]'
        return f'{ident}((("{escape(name)}")))'

    lines = ["flowchart TD"]
    edges: list[tuple[str, str, str | None]] = []
    for target, label in _reached({"(start)": {"Next": definition["StartAt"]}, **states}, "(start)", normal):
        edges.append(("(start)", target, label))
    for part in (normal, failing):
        for name in [n for n in states if n in part and _drawn(states[n])]:
            for target, label in _reached(states, name, part):
                if target != name:
                    edges.append((name, target, label))
    entries: dict[str, list[str]] = {}
    for name, state in states.items():
        if name in normal and _drawn(state):
            for catch in state.get("Catch", []):
                if "States.ALL" in catch["ErrorEquals"] and catch["Next"] in failing:
                    for target, _ in _reached(states, catch["Next"], failing) if not _drawn(states[catch["Next"]]) \
                            else [(catch["Next"], None)]:
                        entries.setdefault(target, []).append(name)
    for source, target, label in edges:
        start = "Start((start))" if source == "(start)" else node(source)
        arrow = f' -.->|"{escape(label)}"| ' if label else " --> "
        lines.append(f"    {start}{arrow}{node(target)}")
    for target, sources in entries.items():
        said = ", ".join(sources) if len(sources) <= 3 else f"{len(sources)} steps"
        lines.append(f'    Fails(["a step fails"]) -.->|"{escape(said)}"| {node(target)}')
    return "\n".join(lines) + "\n"


def readme_block(diagram: str) -> str:
    return f"{BEGIN}\n```mermaid\n{diagram}```\n{END}"


def overview_block(diagram: str) -> str:
    return f"{OVERVIEW_BEGIN}\n```mermaid\n{diagram}```\n{OVERVIEW_END}"


def current_block(text: str, begin: str = BEGIN, end: str = END) -> str | None:
    if begin not in text or end not in text:
        return None
    start = text.index(begin)
    return text[start:text.index(end, start) + len(end)]


def current_readme_block(text: str) -> str | None:
    return current_block(text)


def generate() -> str:
    return mermaid(json.loads(DEFINITION.read_text()))


def generate_overview() -> str:
    return overview(json.loads(DEFINITION.read_text()))


def pages() -> list[tuple[Path, str, str, str]]:
    """(page, begin marker, end marker, the block it must hold)."""
    return [(README, OVERVIEW_BEGIN, OVERVIEW_END, overview_block(generate_overview())),
            (ARCHITECTURE, BEGIN, END, readme_block(generate()))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--overview", action="store_true", help="print the README's overview instead")
    mode.add_argument("--check", action="store_true", help="exit 1 if a page's diagram is not the generated one")
    mode.add_argument("--write", action="store_true", help="replace the pages' diagrams with the generated ones")
    args = parser.parse_args(argv)
    if not (args.check or args.write):
        print(generate_overview() if args.overview else generate(), end="")
        return 0
    status = 0
    for page, begin, end, block in pages():
        name = page.relative_to(REPO_ROOT)
        text = page.read_text()
        existing = current_block(text, begin, end)
        if existing is None:
            print(f"asl_diagram: {name} has no {begin!r} ... {end!r} block", file=sys.stderr)
            status = 1
        elif args.write:
            page.write_text(text.replace(existing, block))
        elif existing != block:
            print(f"asl_diagram: {name}'s state machine diagram differs from statemachine/pipeline.asl.json; "
                  "run: python scripts/asl_diagram.py --write", file=sys.stderr)
            status = 1
        else:
            print(f"asl_diagram: {name}'s diagram matches the definition")
    return status


if __name__ == "__main__":
    sys.exit(main())
