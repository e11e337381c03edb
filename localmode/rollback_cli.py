"""`python -m localmode rollback --version N`: a rollback, locally.

Local mode's AWS lives in this process only, so the command first makes the
history it rolls back in: `--runs` uploads of the data (default 2), each
approved through the approval page, register versions 1..runs and deploy
the last. Then it starts the pipeline with the rollback input AWS's
`scripts/deploy.py rollback` sends (`{"rollback": {"model_package_version":
N}}`): its confirmation arrives as an email whose link opens the same
approval page; AUTO_APPROVE=1 / --auto-approve confirms it as a browser
would, REJECT=1 / --reject refuses it, otherwise it waits for you to open
the link. The registry before and after is printed; the last line is the
path of the rollback's report.json.

Exit status as `python -m localmode run`: 0 rolled back, 1 failed, 2 bad
usage or missing data, 3 the confirmation was rejected, 130 interrupted.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

from localmode import data
from localmode.runner import DEFAULT_OUT, EXIT_USAGE, _printer, _truthy, _write


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localmode rollback", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", type=int, default=1, help="the model package version to roll back to (default 1)")
    parser.add_argument("--runs", type=int, default=2, help="approved runs to make first (default 2)")
    parser.add_argument("--data", default=os.environ.get("DATA") or None,
                        help="training data file (default: $DATA, else $CAR_DATA, else the verified download)")
    decision = parser.add_mutually_exclusive_group()
    decision.add_argument("--auto-approve", action="store_true", default=_truthy("AUTO_APPROVE"),
                          help="confirm the rollback on its page like a browser (env AUTO_APPROVE=1)")
    decision.add_argument("--reject", action="store_true", default=_truthy("REJECT"),
                          help="refuse it on its page (env REJECT=1)")
    parser.add_argument("--out", default=None, help="directory for report.json and logs")
    args = parser.parse_args(argv)
    if args.runs < 1 or not 1 <= args.version <= args.runs:
        parser.error("--version must name one of the --runs versions made first (1..runs)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    out = (Path(args.out) if args.out else DEFAULT_OUT / datetime.datetime.now().strftime("rollback-%Y%m%d-%H%M%S")).resolve()
    try:
        data_path = data.resolve(args.data)
    except data.DataUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from localmode.session import EXIT_INTERRUPTED, LocalPipeline

    say = _printer()
    decision = "approve" if args.auto_approve else "reject" if args.reject else "manual"
    started = time.monotonic()
    try:
        with LocalPipeline(out, say=say) as pipeline:
            failed = make_history(pipeline, args.runs, data_path)
            if failed is not None:
                exit_code, report_path = failed
            else:
                exit_code, report_path = roll_back(pipeline, args.version, decision, started)
    except KeyboardInterrupt:
        say("interrupted")
        print(out)
        return EXIT_INTERRUPTED
    print(report_path)
    return exit_code


def make_history(pipeline, runs: int, data_path: Path) -> tuple[int, Path] | None:
    """`runs` approved runs of the data (registry versions 1..runs on a new account). None when every
    run deployed; else the failed run's (exit status, report path), which ends the command."""
    say = pipeline.say
    for number in range(1, runs + 1):
        say(f"approved run {number} of {runs} (registers version {number})")
        result = pipeline.run(data_path, decision="approve")
        if result.status != "SUCCEEDED":
            path = pipeline.workdir / f"run-{number}.json"
            say(f"run {result.run_id} ended {result.status}: see {pipeline.workdir}")
            _write(path, result.report)
            return result.exit_code, path
    return None


def roll_back(pipeline, version: int, decision: str, started: float | None = None) -> tuple[int, Path]:
    """The rollback to `version` on a pipeline with approved versions: the registry before and after,
    the production endpoint, one smoke prediction and the capture record it left. Returns (exit
    status, path of the rollback's report.json in the pipeline's directory)."""
    say = pipeline.say
    started = time.monotonic() if started is None else started
    _print_registry(say, pipeline.registry_entries(), "registry before the rollback")
    result = pipeline.rollback(version, decision=decision)
    result.report["timings"]["wall_seconds"] = round(time.monotonic() - started, 2)
    say(f"rollback {result.run_id}: {result.report['outcome'].upper()}")
    if result.report.get("failure"):
        failure = result.report["failure"]
        say(f"failed in {failure.get('state')}: {failure.get('error')}: {failure.get('message')}")
    _print_registry(say, result.report["registry"], "registry after the rollback")
    production = result.report["endpoints"]["production"]
    say(f"production endpoint {production['name']}: {production['status']} on {production['config']}")
    if result.status == "SUCCEEDED":
        _smoke_and_capture(say, pipeline, result)
    result.report["artifacts"]["saved_to"] = str(pipeline.save_buckets())
    say(f"artifacts, as on S3: {result.report['artifacts']['saved_to']}")
    report_path = pipeline.workdir / "report.json"
    _write(report_path, result.report)
    return result.exit_code, report_path


def _smoke_and_capture(say, pipeline, result) -> None:
    """One prediction from the rolled-back production endpoint, and the capture record it left."""
    import boto3

    runs = [entry["run_id"] for entry in result.report["registry"]]
    test_uri = f"s3://{pipeline.resources.artifacts_bucket}/runs/{runs[0]}/data/test/"
    features = pipeline.sample_row({"artifacts": {"manifest": {"test": test_uri}}})[0]
    before = set(pipeline.capture_files())
    content_type, body = pipeline.request_for(features, test_uri)
    _, answer = pipeline.invoke_endpoint(result.production_endpoint, body, content_type)
    say(f"smoke prediction: {features} -> {answer.strip()}")
    result.report["smoke"] = {"request": features, "prediction": answer}
    for uri in sorted(set(pipeline.capture_files()) - before):
        bucket, key = uri[5:].split("/", 1)
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        say(f"captured in {uri}:")
        for line in body.splitlines():
            say(f"  {line}")
        result.report.setdefault("captured", []).append({"uri": uri, "records": body.splitlines()})


def _print_registry(say, entries: list[dict], title: str) -> None:
    say(title + ":")
    for entry in entries:
        say(f"  version {entry['version']}: {entry['status']:<22} run {entry['run_id']}  {entry['approval_description']}")


if __name__ == "__main__":
    sys.exit(main())
