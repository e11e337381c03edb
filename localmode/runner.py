"""`python -m localmode run`: the whole pipeline on this machine.

The real state machine (statemachine/pipeline.asl.json) runs in moto's
Step Functions interpreter; its Glue task runs the Glue job (glue/preprocessing) on local
Spark, its training task trains XGBoost locally, its Lambda tasks call the
real handlers in functions/, and the endpoints it creates are served by a
local inference server. The data is uploaded to the (moto) input bucket and
the real start_run Lambda starts the execution, as S3 -> EventBridge would.

`--spec datasets/<name>.json` (SPEC=) picks the dataset (default: car); the
file is uploaded as `input/<name>/<file>`, the key convention that names the
dataset on AWS (car, the default dataset, goes directly under `input/`, as
always). A spec outside datasets/ is uploaded too, as
`deps/datasets/<its name>.json`, as `make deploy` would.

The approval email is printed as the reviewer would read it; open its link
in a browser to approve or reject. AUTO_APPROVE=1 / --auto-approve follows the
link as a browser would and approves; REJECT=1 / --reject rejects; either way
the page it opened is saved as approval-page-<run id>.html in the output
directory (its form's nonce replaced by "redacted"). After a deployment one
smoke prediction is made and the command exits with 0; SERVE=1 / --serve
keeps serving the production endpoint on localhost until Ctrl-C, which ends
it with the run's own status (0 after a deployment).

RUNS=N / --runs N (default 1) uploads the same data N times, one run after
the other in this one local account (local AWS lives only as long as the
command), each decided the same way. From the second run on, RunQATests
sends the held-out rows to the production endpoint an earlier approved run
deployed as well: the email and the page show the new model against it
(`make local AUTO_APPROVE=1 RUNS=2`). A run that fails or is interrupted
ends the series; a rejected one does not.

Exit status: 0 deployed; 1 the run failed (report.json says where and why);
2 bad usage, missing data, or a data file refused before the run starts (empty,
only a header row, not UTF-8 text, or first lines with the wrong number of
fields: localmode/precheck.py); 3 rejected by the reviewer (the execution fails
with ApprovalRejected and production is untouched: not an error of the
pipeline, but not a deployment either, so scripts chaining on success stop);
130 interrupted with Ctrl-C.

The exit status is the last run's. Each run's report is
report-<run id>.json; report.json is the last run's report plus `runs`, the
result of every run of the command (outcome, exit status, QA, the comparison
with production, its report and approval page). The last line printed is the
path of report.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import time
from pathlib import Path

from typing import TYPE_CHECKING

from dataset_spec import DATASET_NAME, DATASET_NAME_RULE, InvalidSpec, parse_spec
from localmode import REPO_ROOT, data
from localmode.precheck import check_data_file

SPEC_DIR = REPO_ROOT / "datasets"

if TYPE_CHECKING:  # the session pulls in moto, boto3 and Spark glue: not needed for --help
    from localmode.faults import Faults
    from localmode.session import LocalPipeline, RunResult

DEFAULT_OUT = REPO_ROOT / "build" / "local-runs"
# As localmode.session names them (not imported here: --help stays fast).
EXIT_DEPLOYED, EXIT_USAGE, EXIT_REJECTED = 0, 2, 3


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _run_count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of runs, got {value!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {count}")
    return count


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m localmode run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", default=os.environ.get("DATA") or None,
                        help="training data file (default: $DATA; for car, else $CAR_DATA, else the verified download; "
                             "for another dataset, the download its spec's source names)")
    parser.add_argument("--spec", default=os.environ.get("SPEC") or None,
                        help="the dataset spec (default: $SPEC, else datasets/car.json)")
    decision = parser.add_mutually_exclusive_group()
    decision.add_argument("--auto-approve", action="store_true", default=_truthy("AUTO_APPROVE"),
                          help="approve through the approval page like a browser, then exit after a smoke prediction "
                               "(env AUTO_APPROVE=1)")
    decision.add_argument("--reject", action="store_true", default=_truthy("REJECT"),
                          help="reject through the approval page like a browser (env REJECT=1)")
    parser.add_argument("--reason", default="Rejected from the command line (REJECT=1).",
                        help="the reason typed on the page when rejecting")
    parser.add_argument("--fault", action="append", default=[os.environ["LOCAL_FAULTS"]] if os.environ.get("LOCAL_FAULTS") else [],
                        help="make a Task state fail as its service would (a state name, e.g. TrainXGBoost), or "
                             "'rollback' (the production update rolls back); repeatable; env LOCAL_FAULTS=a,b")
    parser.add_argument("--out", default=None,
                        help=f"directory for report.json and logs (default: {DEFAULT_OUT.relative_to(REPO_ROOT)}/<time>)")
    parser.add_argument("--runs", type=_run_count, default=os.environ.get("RUNS") or "1",
                        help="upload the data this many times, one run after the other in this one local account; "
                             "from the second run on, QA compares with the production endpoint an earlier run "
                             "deployed (env RUNS; default 1)")
    parser.add_argument("--serve", action="store_true", default=_truthy("SERVE"),
                        help="after the last run, serve the production endpoint on localhost until Ctrl-C, which "
                             "exits with the run's status (env SERVE=1)")
    parser.add_argument("--no-iam", action="store_true", default=_truthy("NO_IAM"),
                        help="run every AWS call with unlimited permissions instead of the template's IAM (env NO_IAM=1)")
    parser.add_argument("--approval-timeout", type=int, default=None,
                        help="approval window in seconds (default: the template's ApprovalWindowSeconds)")
    args = parser.parse_args(argv)
    if args.auto_approve and args.reject:
        parser.error("AUTO_APPROVE and REJECT are both set: choose one")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    out = (Path(args.out) if args.out else DEFAULT_OUT / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")).resolve()
    try:
        spec_path, dataset = dataset_of(args.spec)
        data_path = data_for(args.data, spec_path, dataset)
        # What the first bytes already show is refused now, naming the user's file, not 20 s later by Spark.
        check_data_file(data_path, parse_spec(data.load_spec(spec_path)))
    except (data.DataUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from localmode.asl import definition_tasks
    from localmode.faults import Faults

    try:
        faults = Faults.parse(args.fault, definition_tasks())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from localmode.workers.spark import SparkProvider

    # The JVM takes longest to start: it starts now, while moto and the rest are imported and set up.
    from localmode.glue_local import input_size

    SparkProvider.warm(out, input_bytes=input_size(data_path))
    from localmode.session import EXIT_INTERRUPTED, LocalPipeline
    say = _printer()
    say(f"local mode: dataset {dataset} ({spec_path}), data {data_path}, logs in {out}")
    say("IAM: not enforced (--no-iam): every call runs with unlimited permissions" if args.no_iam else
        "IAM: every call is authorized under template.yaml's policies (--no-iam turns this off)")
    parameters = {"ApprovalWindowSeconds": args.approval_timeout} if args.approval_timeout else {}
    started = time.monotonic()
    extra = [] if spec_path.resolve().parent == SPEC_DIR.resolve() else [spec_path]
    try:
        with LocalPipeline(out, say=say, parameters=parameters, extra_specs=extra, iam=not args.no_iam) as pipeline:
            exit_code, report_path = execute_runs(pipeline, args, data_path, faults, started, dataset=dataset)
    except KeyboardInterrupt:
        say("interrupted")
        print(out)
        return EXIT_INTERRUPTED
    print(report_path)
    return exit_code


def dataset_of(spec: str | None) -> tuple[Path, str]:
    """The spec file and the dataset it names (its `name`, which names its upload folder and endpoint)."""
    path = Path(spec).expanduser() if spec else data.DEFAULT_SPEC
    if not path.is_file():
        raise ValueError(f"spec {path} does not exist (the specs are datasets/<name>.json)")
    try:
        spec = data.load_spec(path)
        name = spec.get("name")
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"spec {path} is not a JSON object: {exc}") from None
    try:
        # The whole spec, by the parser the Glue job uses: a wrong type is refused now, in the job's words,
        # not after the JVM started.
        parse_spec(spec)
    except InvalidSpec as exc:
        raise ValueError(f"spec {path}: {exc}") from None
    if not isinstance(name, str) or not DATASET_NAME.fullmatch(name):
        raise ValueError(f"spec {path} names dataset {name!r}: a name is {DATASET_NAME_RULE}")
    if path.resolve().parent == SPEC_DIR.resolve() and path.stem != name:
        raise ValueError(f"{path} names dataset {name!r}; make deploy uploads it only as datasets/{name}.json")
    return path, name


def data_for(given: str | None, spec_path: Path, dataset: str) -> Path:
    """DATA if given; car's data comes from $CAR_DATA or its verified download; another dataset's from
    its spec's download source, if it has one."""
    if given or dataset == "car":
        return data.resolve(given)
    spec = data.load_spec(spec_path)
    if isinstance(spec.get("source"), dict) and spec["source"].get("urls"):
        return data.download(spec)
    raise data.DataUnavailable(f"dataset {dataset}: pass its data file with DATA=path (make local) or --data "
                               f"(its spec {spec_path} names no download source)")


def execute_runs(pipeline: LocalPipeline, args: argparse.Namespace, data_path: Path, faults: Faults,
                 started: float | None = None, dataset: str | None = None) -> tuple[int, Path]:
    """`args.runs` runs of the same data on one set-up pipeline, as the command makes them.
    Returns (the last run's exit status, the path of report.json)."""
    say = pipeline.say
    results: list[dict] = []
    exit_code, report = EXIT_USAGE, {}
    for number in range(1, args.runs + 1):
        if args.runs > 1:
            say("")
            say(f"run {number} of {args.runs}")
        last = number == args.runs
        # The first run's wall time includes the setup, as a single run's always did.
        exit_code, run_report_path = execute(pipeline, args, data_path, faults, started if number == 1 else None,
                                             dataset=dataset, serve=last)
        report = json.loads(run_report_path.read_text(encoding="utf-8"))
        results.append(run_summary(report, exit_code, run_report_path))
        if exit_code not in (EXIT_DEPLOYED, EXIT_REJECTED):
            if not last:
                say(f"run {number} of {args.runs} ended {report.get('outcome')}: the remaining runs are not made")
            break
    report_path = pipeline.workdir / "report.json"
    _write(report_path, {**report, "runs": results})
    return exit_code, report_path


def run_summary(report: dict, exit_code: int, report_path: Path) -> dict:
    """One run's result, as report.json's `runs` lists it."""
    qa = report.get("qa") or {}
    qa_report = qa.get("report") or {}
    return {
        "run_id": report.get("run_id"),
        "status": report.get("status"),
        "outcome": report.get("outcome"),
        "exit_code": exit_code,
        "qa": {k: qa.get(k) for k in ("metric", "value", "threshold", "rows")} if qa else None,
        # What production was and scored on the same rows (its full figures are in the run's report).
        "production": {k: v for k, v in (qa_report.get("production") or {}).items()
                       if k in ("endpoint_name", "compared", "note", qa.get("metric"))} if qa_report else None,
        "versus_production": qa_report.get("versus_production"),
        "registry_version": next((e.get("version") for e in report.get("registry") or []
                                  if e.get("run_id") == report.get("run_id")), None),
        "failure": report.get("failure"),
        "report": str(report_path),
        "approval_page": (report.get("approval") or {}).get("page"),
    }


def execute(pipeline: LocalPipeline, args: argparse.Namespace, data_path: Path, faults: Faults,
            started: float | None = None, dataset: str | None = None, report_path: Path | None = None,
            serve: bool = True) -> tuple[int, Path]:
    """One run on a set-up pipeline, as the command does it: progress, summary, smoke
    prediction, serving (with --serve, when `serve`: the last run), its report. Returns (exit status,
    report path: `report_path`, else report-<run id>.json in the pipeline's directory)."""
    say = pipeline.say
    started = time.monotonic() if started is None else started
    decision = "approve" if args.auto_approve else "reject" if args.reject else "manual"
    if faults:
        say(f"injected faults: {', '.join(faults.describe())}")
    say(f"setup done in {pipeline.timings['setup_seconds']:.1f}s; inference server {pipeline.inference_url}, "
        f"approval page {pipeline.approval_url}")
    result = pipeline.run(data_path, decision=decision, faults=faults, reason=args.reason, dataset=dataset)
    result.report["timings"]["wall_seconds"] = round(time.monotonic() - started, 2)
    _summarize(say, result)
    report_path = report_path or pipeline.workdir / f"report-{result.run_id}.json"
    if result.status == "SUCCEEDED":
        _smoke(say, pipeline, result)
    # The local buckets end with the command: what the run made is written to disk, in S3's layout.
    saved = pipeline.save_buckets()
    result.report["artifacts"]["saved_to"] = str(saved)
    say(f"artifacts, as on S3 (runs/<run id>/ model bundles, splits, manifest, QA report; models/; capture/): {saved}")
    if result.status == "SUCCEEDED" and serve and getattr(args, "serve", False):
        _serve(say, pipeline, result, report_path)
    _write(report_path, result.report)
    return result.exit_code, report_path


def _printer():
    def say(line: str) -> None:
        print(line, flush=True)

    return say


def _write(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")


def _summarize(say, result: RunResult) -> None:
    report = result.report
    say("")
    say(f"run {result.run_id}: {report['outcome'].upper()} in {report['seconds']:.1f}s")
    # Every Task and Wait state that ran, however short, so that two runs list the same steps.
    for name, seconds in report.get("step_seconds", report["state_seconds"]).items():
        say(f"  {name:<28} {seconds:8.2f}s")
    if report.get("qa"):
        qa = report["qa"]
        say(f"QA {qa.get('metric')} {qa.get('value')} on {qa.get('rows')} held-out rows (threshold {qa.get('threshold')}, "
            f"{qa.get('problem_type')})")
    failure = report.get("failure")
    if failure:
        say(f"failed in {failure.get('state')}: {failure.get('error')}: {failure.get('message')}")
    cleanup = report.get("cleanup")
    if cleanup:
        result = cleanup.get("result") or {}
        say(f"cleanup state machine (run ended): {cleanup.get('status')}"
            + (f", QA endpoint {result.get('qa_endpoint')}: {result.get('action')}" if result else ""))
    endpoints = report["endpoints"]
    if endpoints["qa"]["name"]:  # a run that failed before planning its names never had one
        say(f"QA endpoint {endpoints['qa']['name']}: {'still exists' if endpoints['qa']['exists'] else 'deleted'}")
    production = endpoints["production"]
    say(f"production endpoint {production['name']}: "
        + (f"{production['status']} on {production['config']}" if production["exists"] else "does not exist"))


def _smoke(say, pipeline: LocalPipeline, result: RunResult) -> None:
    """One prediction from the deployed endpoint, and the curl that makes it."""
    report = result.report
    endpoint = result.production_endpoint
    features, truth = pipeline.sample_row(report)
    request_type, body = pipeline.request_for(features, report["artifacts"]["manifest"]["test"])
    content_type, prediction = pipeline.invoke_endpoint(endpoint, body, request_type)
    report["smoke"] = {"request": features, "request_content_type": request_type, "content_type": content_type,
                       "prediction": prediction.strip(), "truth": truth}
    url = report["endpoints"]["production"]["url"]
    say(f"smoke prediction: {features} -> {prediction.strip()} (true label {truth})")
    say("try it:")
    if request_type == "text/csv":
        say(f"  curl -s -X POST {url} -H 'Content-Type: text/csv' --data {shlex.quote(features)}")
    else:
        # Too many features for the container's schema variable: each request carries the schema.
        say(f"  curl -s -X POST {url} -H 'Content-Type: {request_type}' --data {shlex.quote(body.decode('utf-8'))}")


def _serve(say, pipeline: LocalPipeline, result: RunResult, report_path: Path) -> None:
    """Serves production until Ctrl-C (SERVE=1), which ends the serving, not the run."""
    report = result.report
    endpoint = result.production_endpoint
    url = report["endpoints"]["production"]["url"]
    _write(report_path, report)
    say(f"serving {endpoint} at {url} until Ctrl-C")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        say("stopped serving")


if __name__ == "__main__":
    sys.exit(main())
