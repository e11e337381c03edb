"""Which of the template's Allow statements some local run needs.

The runs' every authorization request is recorded (`LocalPipeline(record_iam=True)`). Each mutation
removes one Allow statement of one role, or one Resource entry of a statement that lists several
(narrowing it, e.g. to the default dataset's names only), and replays that role's requests: a
request allowed before and denied after is the call that would have failed, in the state it was
in. A run stops at its first denied call (or, where the handler handles the refusal, continues
without what it asked for), so the first such request is where the run would have gone wrong.

A statement no request needs is an over-grant, unless the template says why it must stay, in its
top-level `Metadata: LocalIam: Unexercised:` map: `<Sid>` (that Sid in any role), `<Role>.<Sid>`,
or `<Role>.<Sid>[<n>]` for the n-th Resource entry (the calls AWS makes that local mode does not:
the Lambda service's log writes, X-Ray, Glue's and SageMaker's own reads, retries no run makes).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

from localmode.iam.enforce import decide_request
from localmode.iam.evaluate import Policy, Request, as_list
from localmode.iam.policies import Principal, StackIam


@dataclass
class Finding:
    role: str
    statement: str  # "<role>/<policy>#<Sid>", or with "[resource]" for a narrowed entry
    needed_by: str | None  # "<state>: <part> <action> on <resource>" for the first request it breaks
    explained: str | None = None

    @property
    def over_grant(self) -> bool:
        return self.needed_by is None and self.explained is None

    @property
    def stale_explanation(self) -> bool:
        """The template explains why no run needs it, yet a run does."""
        return self.needed_by is not None and self.explained is not None


def _mutations(policies: list[Policy]):
    """(label, policies with one Allow statement removed or one of its resources dropped)."""
    for p_index, policy in enumerate(policies):
        for s_index, statement in enumerate(as_list(policy.document.get("Statement"))):
            if statement.get("Effect") != "Allow":
                continue
            sid = statement.get("Sid") or str(s_index)
            label = f"{policy.source}#{sid}"
            yield label, (sid,), _replace(policies, p_index, s_index, None)
            resources = as_list(statement.get("Resource"))
            if len(resources) > 1:
                for r_index, resource in enumerate(resources):
                    narrowed = {**statement, "Resource": resources[:r_index] + resources[r_index + 1:]}
                    yield f"{label} [{resource}]", (f"{sid}[{r_index}]", sid), _replace(policies, p_index, s_index, narrowed)


def _replace(policies: list[Policy], p_index: int, s_index: int, statement: dict | None) -> list[Policy]:
    document = copy.deepcopy(policies[p_index].document)
    found = as_list(document.get("Statement"))
    if statement is None:
        del found[s_index]
    else:
        found[s_index] = statement
    document["Statement"] = found
    return [*policies[:p_index], Policy(document, policies[p_index].source), *policies[p_index + 1:]]


def unexercised_explanations(iam: StackIam) -> dict[str, str]:
    metadata = iam.stack.template.get("Metadata") or {}
    return dict((metadata.get("LocalIam") or {}).get("Unexercised") or {})


def explanation_for(explanations: dict[str, str], role: str, keys: tuple[str, ...]) -> str | None:
    """The template's reason for a statement (or Resource entry) no run needs, most specific first."""
    for key in keys:
        for name in (f"{role}.{key}", key):
            if name in explanations:
                return explanations[name]
    return None


def replay(iam: StackIam, record: list[tuple[Principal, Request, str | None]], account: str) -> list[Finding]:
    """One Finding per Allow statement (and per dropped Resource entry) of every role."""
    by_role: dict[str, list[tuple[Principal, Request, str | None]]] = {}
    for principal, request, state in record:
        by_role.setdefault(principal.role, []).append((principal, request, state))
    findings = []
    explanations = unexercised_explanations(iam)
    for role in iam.roles():
        policies = iam.identity[role]
        requests = by_role.get(role, [])
        allowed = [(p, r, s) for p, r, s in requests if decide_request(iam, policies, r, account).allowed]
        for label, keys, mutated in _mutations(policies):
            broken = next(((p, r, s) for p, r, s in allowed if not decide_request(iam, mutated, r, account).allowed), None)
            needed_by = (f"{broken[2] or '(outside a state)'}: {broken[0].part} {broken[1].action} on {broken[1].resource}"
                         if broken else None)
            findings.append(Finding(role, label, needed_by, explanation_for(explanations, role, keys)))
    return findings


def table(findings: list[Finding]) -> str:
    """The findings as a Markdown table, statements first, then the narrowed resources."""
    lines = ["| statement | needed by (first call that fails without it) |", "|---|---|"]
    for finding in findings:
        needed = finding.needed_by or (f"not exercised locally: {finding.explained}" if finding.explained
                                       else "**over-grant: no run needs it**")
        if finding.stale_explanation:
            needed += " (**the template's reason for not needing it is stale**)"
        lines.append(f"| `{finding.statement}` | {needed} |")
    return "\n".join(lines)
