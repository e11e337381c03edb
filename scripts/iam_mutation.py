"""`make iam-mutation`: the policy mutation of localmode.iam.mutation over the runs of
localmode.iam.scenarios, as a Markdown table (stdout, and docs/iam-mutation.md with --write)."""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "glue")]

from localmode import data as car_data_source  # noqa: E402
from localmode.iam.mutation import replay, table  # noqa: E402
from localmode.iam.scenarios import run_scenarios  # noqa: E402
from localmode.session import LocalPipeline  # noqa: E402

DOC = REPO / "docs" / "iam-mutation.md"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"write the table to {DOC.relative_to(REPO)}")
    args = parser.parse_args(argv)
    car = car_data_source.resolve(None)
    with tempfile.TemporaryDirectory(prefix="iam-mutation-") as work, \
            LocalPipeline(Path(work) / "account", say=lambda line: None, record_iam=True) as pipeline:
        results = run_scenarios(pipeline, car, Path(work))
        denials = {name: r.report["iam"]["denials"] for name, r in results.items() if r.report["iam"]["denials"]}
        outcomes = {name: r.report["outcome"] for name, r in results.items()}
        outcomes = {name: r.report["outcome"] for name, r in results.items()}
        findings = replay(pipeline.stack_iam, pipeline.enforcer.record, pipeline.stack.account)
    statements = [f for f in findings if "[" not in f.statement]
    narrowed = [f for f in findings if "[" in f.statement]
    summary = (f"{len(statements)} Allow statements: {sum(1 for f in statements if f.needed_by)} needed by some run, "
               f"{sum(1 for f in statements if f.explained and not f.needed_by)} not exercised locally (explained in "
               f"template.yaml), {sum(1 for f in statements if f.over_grant)} over-grants. "
               f"{len(narrowed)} Resource entries of multi-resource statements: "
               f"{sum(1 for f in narrowed if f.needed_by)} needed, "
               f"{sum(1 for f in narrowed if f.explained and not f.needed_by)} not exercised locally (explained), "
               f"{sum(1 for f in narrowed if f.over_grant)} never used.")
    text = "\n".join([
        "# Policy mutation", "",
        "Written by `make iam-mutation` (scripts/iam_mutation.py); how it works: [iam.md](iam.md#policy-mutation).", "",
        "Runs and their outcomes: " + "; ".join(f"{n} ({o})" for n, o in outcomes.items()) + ".", "",
        f"Denials in these runs: {denials or 'none'}.", "",
        summary, "", table(findings), ""])
    print(text)
    if args.write:
        DOC.write_text(text, encoding="utf-8")
    return 0 if not denials else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
