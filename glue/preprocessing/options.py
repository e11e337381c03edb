"""The job's arguments: Glue passes them as `--name value` (plus its own, which are ignored), and so
does the local command line."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from dataset_spec import InvalidSpec, read_spec
from preprocessing.store import s3_client, split_s3

DEFAULT_SEED = 42


@dataclass(frozen=True)
class JobOptions:
    input: str
    output: str
    run_id: str
    spec: dict
    seed: int = DEFAULT_SEED
    spec_source: str = field(default="", compare=False)


def load_spec(source: str) -> dict:
    """The spec at `source` (s3:// or a local path), parsed and checked."""
    if source.startswith("s3://"):
        bucket, key = split_s3(source)
        body = s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        text = body.decode("utf-8")
    else:
        with open(source, encoding="utf-8") as fh:
            text = fh.read()
    return read_spec(text, source)


def default_spec_path() -> str | None:
    # This checkout's datasets/car.json; on Glue (the package inside its zip) there is none.
    candidate = Path(__file__).resolve().parents[2] / "datasets" / "car.json"
    return str(candidate) if candidate.is_file() else None


def parse_options(argv: list[str]) -> JobOptions:
    """`argv` without the program name. Glue passes job arguments as `--name value`
    (plus its own, which are ignored); so does the local command line."""
    try:
        from awsglue.utils import getResolvedOptions  # type: ignore[import-not-found]
    except ImportError:
        getResolvedOptions = None
    if getResolvedOptions is not None:
        # getResolvedOptions fails on names that are absent: ask for optional ones only when given.
        names = ["input", "output", "run_id"] + [n for n in ("spec", "seed") if f"--{n}" in argv]
        # Like sys.argv, getResolvedOptions expects the program name first.
        values = getResolvedOptions(["preprocess.py", *argv], names)
    else:
        parser = argparse.ArgumentParser(description="Glue preprocessing job (local invocation)")
        parser.add_argument("--input", required=True, help="CSV file or prefix (s3:// or local)")
        parser.add_argument("--output", required=True, help="run prefix (s3://bucket/runs/<id>/ or a local directory)")
        parser.add_argument("--run_id", required=True)
        parser.add_argument("--spec", default=default_spec_path(), help="dataset spec JSON (s3:// or local)")
        parser.add_argument("--seed", default=str(DEFAULT_SEED))
        values = vars(parser.parse_known_args(argv)[0])
    spec_source = values.get("spec") or default_spec_path()
    if not spec_source:
        raise InvalidSpec("--spec is required (s3:// URI or path of the dataset spec JSON)")
    try:
        seed = int(values.get("seed") or DEFAULT_SEED)
    except ValueError as exc:
        raise ValueError(f"--seed must be an integer, got {values.get('seed')!r}") from exc
    return JobOptions(
        input=values["input"], output=values["output"], run_id=values["run_id"],
        spec=load_spec(spec_source), seed=seed, spec_source=spec_source,
    )
