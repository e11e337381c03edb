"""A Mermaid flowchart of statemachine/pipeline.asl.json, for the README.

Every state and transition of the definition is drawn, except that the
per-task failure recorders (Pass states reached only through a Catch, all
leading to the same next state) are drawn as one node: fourteen identical
boxes would hide the flow. Catch edges are dotted, Choice edges carry their
conditions.

    python scripts/asl_diagram.py           # print the diagram
    python scripts/asl_diagram.py --check   # exit 1 when README.md's copy differs
    python scripts/asl_diagram.py --write   # replace README.md's copy
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
BEGIN = "<!-- BEGIN GENERATED DIAGRAM: python scripts/asl_diagram.py --write -->"
END = "<!-- END GENERATED DIAGRAM -->"

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


def readme_block(diagram: str) -> str:
    return f"{BEGIN}\n```mermaid\n{diagram}```\n{END}"


def current_readme_block(text: str) -> str | None:
    if BEGIN not in text or END not in text:
        return None
    start = text.index(BEGIN)
    return text[start:text.index(END, start) + len(END)]


def generate() -> str:
    return mermaid(json.loads(DEFINITION.read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if README.md's diagram is not the generated one")
    mode.add_argument("--write", action="store_true", help="replace README.md's diagram with the generated one")
    args = parser.parse_args(argv)
    block = readme_block(generate())
    if not (args.check or args.write):
        print(generate(), end="")
        return 0
    text = README.read_text()
    existing = current_readme_block(text)
    if args.write:
        if existing is None:
            print(f"asl_diagram: README.md has no {BEGIN!r} ... {END!r} block to replace", file=sys.stderr)
            return 1
        README.write_text(text.replace(existing, block))
        return 0
    if existing != block:
        print("asl_diagram: README.md's state machine diagram differs from statemachine/pipeline.asl.json; "
              "run: python scripts/asl_diagram.py --write", file=sys.stderr)
        return 1
    print("asl_diagram: README.md's diagram matches the definition")
    return 0


if __name__ == "__main__":
    sys.exit(main())
