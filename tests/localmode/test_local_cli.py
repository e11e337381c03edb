"""`python -m localmode run` as `make local` calls it: exit status, progress,
and the report.json named on the last line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from localmode import runner


def test_help_describes_the_options_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as exited:
        runner.main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for needle in ("--auto-approve", "--reject", "--data", "--out", "--fault", "AUTO_APPROVE", "3 rejected",
                   "--runs", "RUNS=N", "approval-page-<run id>.html", "report-<run id>.json"):
        assert needle in text


def test_auto_approve_and_reject_together_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        runner.main(["--auto-approve", "--reject"])
    assert exited.value.code == 2


def test_missing_data_file_is_a_clear_usage_error(tmp_path, capsys):
    assert runner.main(["--data", str(tmp_path / "nope.data"), "--out", str(tmp_path)]) == 2
    assert "nope.data does not exist" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.spark
def test_a_failed_run_exits_1_and_names_its_report_last(car_data, tmp_path, capsys):
    rows = car_data.read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "car-unknown-label.data"
    bad.write_text("\n".join(rows[:10] + ["vhigh,vhigh,2,2,small,low,excellent"] + rows[10:30]) + "\n", encoding="utf-8")

    code = runner.main(["--data", str(bad), "--out", str(tmp_path / "run"), "--auto-approve"])

    out = capsys.readouterr().out
    assert code == 1, out[-3000:]
    last_line = out.strip().splitlines()[-1]
    assert Path(last_line) == tmp_path / "run" / "report.json"
    report = json.loads(Path(last_line).read_text(encoding="utf-8"))
    assert report["outcome"] == "failed" and report["failure"]["state"] == "PreprocessWithGlue"
    assert "line 11" in report["failure"]["message"]
    assert "PreprocessWithGlue FAILED" in out and "failed in PreprocessWithGlue" in out
    assert not report["endpoints"]["all"]
    assert (tmp_path / "run" / "lambdas.log").stat().st_size > 0


def test_unknown_fault_is_a_usage_error(tmp_path, car_data, capsys):
    assert runner.main(["--data", str(car_data), "--out", str(tmp_path), "--fault", "TrainXGBoot"]) == 2
    assert "unknown fault 'TrainXGBoot'" in capsys.readouterr().err


def test_runs_comes_from_the_option_or_the_environment(monkeypatch):
    assert runner.parse_args([]).runs == 1
    assert runner.parse_args(["--runs", "3"]).runs == 3
    monkeypatch.setenv("RUNS", "2")  # make local RUNS=2 exports it
    assert runner.parse_args([]).runs == 2


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_a_run_count_that_is_not_a_positive_number_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as exited:
        runner.parse_args(["--runs", value])
    assert exited.value.code == 2
    assert "--runs" in capsys.readouterr().err


def test_the_runners_exit_codes_are_the_sessions():
    # runner keeps its own copies so that --help does not import moto and Spark.
    from localmode import session

    assert (runner.EXIT_DEPLOYED, runner.EXIT_USAGE, runner.EXIT_REJECTED) == (
        session.EXIT_DEPLOYED, session.EXIT_USAGE, session.EXIT_REJECTED)


def test_rollback_asks_for_a_version_among_the_runs_it_makes(capsys):
    from localmode import rollback_cli

    args = rollback_cli.parse_args(["--runs", "2", "--version", "1", "--auto-approve"])
    assert (args.runs, args.version, args.auto_approve, args.reject) == (2, 1, True, False)
    for argv in (["--runs", "2", "--version", "3"], ["--runs", "0"], ["--version", "0"],
                 ["--auto-approve", "--reject"]):
        with pytest.raises(SystemExit) as exited:
            rollback_cli.parse_args(argv)
        assert exited.value.code == 2, argv


def test_a_spec_the_job_would_refuse_is_refused_before_the_run_starts(tmp_path, car_data, capsys):
    # A column of "type": "integer" had been found 13 s into the run, by the Glue job, and exited 1 (issue 23).
    import json

    spec = json.loads((runner.SPEC_DIR / "car.json").read_text(encoding="utf-8"))
    spec["name"] = "cars"
    spec["columns"][0]["type"] = "integer"
    path = tmp_path / "cars.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    assert runner.main(["--data", str(car_data), "--spec", str(path), "--out", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()  # refused before the JVM or local AWS started: nothing was written
    error = capsys.readouterr().err
    assert f"spec {path}:" in error and "integer" in error


def test_a_directory_as_data_is_named_a_directory_not_missing(tmp_path, capsys):
    (tmp_path / "uploads").mkdir()
    assert runner.main(["--data", str(tmp_path / "uploads"), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'uploads'} (given by DATA) is a directory: pass one data file" in error
    assert "does not exist" not in error


def test_serving_after_the_run_is_asked_for_and_ctrl_c_then_keeps_the_runs_status(monkeypatch, tmp_path):
    """An interactive deploy once served until Ctrl-C, so it could only end with 130 although it had
    deployed. Now the command exits after the smoke prediction unless SERVE=1, and Ctrl-C during
    serving ends serving, not the run: the caller returns normally and the status stays the run's."""
    monkeypatch.delenv("SERVE", raising=False)
    assert runner.parse_args([]).serve is False
    assert runner.parse_args(["--serve"]).serve is True
    monkeypatch.setenv("SERVE", "1")
    assert runner.parse_args([]).serve is True

    class Pipeline:
        def sample_row(self, report):
            return "vhigh,vhigh,2,2,small,low", "unacc"

        def request_for(self, features, test_uri):
            return "text/csv", features.encode("utf-8")

        def invoke_endpoint(self, endpoint, body, content_type="text/csv"):
            return "text/csv", "unacc\n"

    from localmode.session import RunResult

    result = RunResult("r1", "arn", "SUCCEEDED", {
        "artifacts": {"manifest": {"test": "s3://b/runs/r1/data/test/"}},
        "endpoints": {"production": {"name": "car-prod", "url": "http://127.0.0.1:1/endpoints/car-prod/invocations"}},
    }, 0)
    said: list[str] = []
    sleeps: list[float] = []
    monkeypatch.setattr(runner.time, "sleep", lambda seconds: sleeps.append(seconds))
    runner._smoke(said.append, Pipeline(), result)
    assert sleeps == [] and not any("serving" in line for line in said)

    def interrupted(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner.time, "sleep", interrupted)
    runner._serve(said.append, Pipeline(), result, tmp_path / "report.json")
    assert said[-1] == "stopped serving" and result.exit_code == 0
    assert json.loads((tmp_path / "report.json").read_text())["smoke"]["prediction"] == "unacc"


def test_make_local_installs_only_what_local_mode_runs():
    """README said the MLeap jars are for tests only, yet `make local` built them (Maven) and ran
    `npm ci`. With both inputs marked changed (-W), a dry run of `make local` names neither tool,
    while `make test` still builds both."""
    import subprocess

    from localmode import REPO_ROOT

    def dry_run(target: str) -> str:
        return subprocess.run(["make", "-n", "-W", "tests/jvm/pom.xml", "-W", "package.json", target], cwd=REPO_ROOT,
                              capture_output=True, text=True, check=True).stdout

    local = dry_run("local")
    assert "localmode run" in local and "mvn" not in local and "npm" not in local and "apt-get" not in local
    test = dry_run("test")
    assert "mvn" in test and "npm ci" in test


def test_a_run_that_never_named_a_qa_endpoint_prints_no_qa_endpoint_line():
    """A run that failed before planning its names printed "QA endpoint None: deleted"."""
    from localmode.session import RunResult

    said: list[str] = []
    report = {"outcome": "failed", "seconds": 0.4, "state_seconds": {}, "qa": None, "cleanup": None,
              "failure": {"state": "ValidateInput", "error": "Pipeline.InvalidInput", "message": "no input_uri"},
              "endpoints": {"qa": {"name": None, "exists": False},
                            "production": {"name": "car-prod", "exists": False}}}
    runner._summarize(said.append, RunResult("r1", "arn", "FAILED", report, 1))
    assert not any(line.startswith("QA endpoint") for line in said)
    assert "production endpoint car-prod: does not exist" in said
