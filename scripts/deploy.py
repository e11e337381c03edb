"""Deploy the pipeline to AWS in one command (`make deploy`), and take it down.

    python scripts/deploy.py deploy      # sam build, sam deploy, upload the Glue job's zip and the dataset specs
    python scripts/deploy.py teardown    # delete the production endpoints, stop access logs, empty the buckets, sam delete
    python scripts/deploy.py rollback --version N [--dataset NAME]   # redeploy an earlier approved model version (asks by email first)
    python scripts/deploy.py rollback --list [--dataset NAME]        # a dataset's model registry versions

`sam deploy` packages the Lambda code and the Glue job's script (glue/preprocess.py, Command.
ScriptLocation), but neither the Glue job's code nor the dataset specs: this script builds the
zip of the job's packages (glue/preprocessing and functions/common/dataset_spec) that the job's
`--extra-py-files` names, `s3://<ArtifactsBucket>/deps/glue/preprocessing.zip`, and uploads it and
every `datasets/*.json` (to `s3://<ArtifactsBucket>/deps/datasets/<dataset>.json`, each run's
`--spec`) once the stack exists. Region and credentials come
from the usual AWS settings (AWS_PROFILE, AWS_REGION, or what
`sam deploy --guided` saved in samconfig.toml).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path
from typing import Callable, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
# The dataset spec's one parser lives in the Lambda layer's folder (and ships in the Glue job's zip).
if str(REPO_ROOT / "functions" / "common") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "functions" / "common"))

from dataset_spec import DATASET_NAME, DATASET_NAME_RULE, parse_spec  # noqa: E402
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
from localmode.stack import load_template  # noqa: E402  (template.yaml with CloudFormation's short tags)
# Where runs look for a dataset's spec (spec_key; the Glue job's default --spec).
from pipeline_common.datasets import SPEC_PREFIX  # noqa: E402

SAMCONFIG = REPO_ROOT / "samconfig.toml"
TEMPLATE = REPO_ROOT / "template.yaml"
DATASETS = REPO_ROOT / "datasets"

# One pin for every place that runs the SAM CLI (scripts/lint.py imports it).
SAM_CLI_VERSION = "1.170.0"
LAMBDA_PYTHON = "python3.13"

# The Glue job's code: the packages its script imports, as one zip that template.yaml's PreprocessJob
# names in --extra-py-files (and GlueJobRole may read). Glue adds a Spark job's --extra-py-files .zip
# to the Python path before the script runs:
# https://docs.aws.amazon.com/glue/latest/dg/aws-glue-programming-etl-glue-arguments.html and
# https://docs.aws.amazon.com/glue/latest/dg/aws-glue-programming-python-libraries.html
GLUE_PACKAGE_KEY = "deps/glue/preprocessing.zip"
# Each folder's packages go in at the zip's top level, as import names: preprocessing, dataset_spec.
GLUE_PACKAGES = (REPO_ROOT / "glue" / "preprocessing", REPO_ROOT / "functions" / "common" / "dataset_spec")

# Stack outputs this script reads (tests check template.yaml declares them).
OUTPUTS_USED = ("ArtifactsBucketName", "InputBucketName", "AccessLogsBucketName", "ProductionEndpointName",
                "StateMachineArn", "UploadCommand", "ApprovalApiUrl", "StateTableName", "ModelPackageGroupName",
                "ProductionEndpointSuffix", "DefaultDataset")

Runner = Callable[[Sequence[str]], None]


class DeployError(RuntimeError):
    """A step failed; the message says which and what to do."""


# The longest name each service accepts for what template.yaml names after the stack (the APIs' length
# constraints, as botocore's models carry them, or their documentation where it is stricter: a bare Lambda
# function name is at most 64 of the 140 a full ARN may have; a WAF metric name at most 128 of 255;
# tests/template/test_template_deploy_script.py reads both). None: the API sets no limit.
NAME_LIMITS = {
    ("AWS::Serverless::Function", "FunctionName"): 64,
    ("AWS::Serverless::StateMachine", "Name"): 80,
    ("AWS::WAFv2::WebACL", "Name"): 128,
    ("AWS::WAFv2::WebACL", "VisibilityConfig.MetricName"): 128,
    ("AWS::Glue::Job", "Name"): 255,
    ("AWS::Glue::SecurityConfiguration", "Name"): 255,
    ("AWS::CloudWatch::Alarm", "AlarmName"): 255,
    ("AWS::KMS::Alias", "AliasName"): 256,
    ("AWS::Logs::LogGroup", "LogGroupName"): 512,
    ("AWS::Serverless::Api", "Name"): None,
}
# CloudFormation's own limit on a stack name.
STACK_NAME_LIMIT = 128
STACK_NAME_TOKEN = "${AWS::StackName}"


def stack_named_properties(template: dict) -> list[tuple[str, str, str]]:
    """(resource type, property path, !Sub text) for each name template.yaml builds from the stack name."""
    found = []

    def walk(value, path):
        if isinstance(value, dict):
            if set(value) == {"Fn::Sub"}:
                text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
                if STACK_NAME_TOKEN in text and not text.startswith("arn:"):
                    yield ".".join(path), text
                return
            for key, item in value.items():
                yield from walk(item, [*path, key])
        elif isinstance(value, list):
            for item in value:
                yield from walk(item, path)

    for resource in template["Resources"].values():
        for path, text in walk(resource.get("Properties", {}), []):
            if not (path.startswith("Environment.") or path == "Description"):
                found.append((resource["Type"], path, text))
    return found


def longest_stack_name(template: dict) -> tuple[int, str]:
    """The longest stack name every name the template derives from it fits, and the name that limits it."""
    limit, limiting = STACK_NAME_LIMIT, "CloudFormation's stack name"
    for kind, path, text in stack_named_properties(template):
        if (kind, path) not in NAME_LIMITS:
            raise DeployError(f"{kind} {path} is named after the stack ({text}) but its length limit is not known")
        if NAME_LIMITS[(kind, path)] is None:
            continue
        fits = NAME_LIMITS[(kind, path)] - len(text.replace(STACK_NAME_TOKEN, ""))
        if fits < limit:
            limit, limiting = fits, f"{kind} {path} {text} (at most {NAME_LIMITS[(kind, path)]} characters)"
    return limit, limiting


def check_stack_name(stack_name: str | None, template: dict) -> None:
    limit, limiting = longest_stack_name(template)
    if stack_name and len(stack_name) > limit:
        raise DeployError(
            f"stack name {stack_name!r} has {len(stack_name)} characters; this template allows at most {limit}: "
            f"{limiting}. Choose a shorter stack_name in samconfig.toml (or when sam deploy --guided asks)."
        )


def uv_executable() -> str:
    bootstrap = REPO_ROOT / ".cache" / "bootstrap" / "bin" / "uv"
    if bootstrap.exists():
        return str(bootstrap)
    found = shutil.which("uv")
    if not found:
        raise DeployError("uv is needed to run the pinned SAM CLI: run `make setup` (it bootstraps uv) first")
    return found


def sam_command(*args: str) -> list[str]:
    return [uv_executable(), "tool", "run", "--python", "3.11", "--from", f"aws-sam-cli=={SAM_CLI_VERSION}", "sam", *args]


def run_command(command: Sequence[str]) -> None:
    print("+ " + " ".join(command), flush=True)
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    result = subprocess.run(list(command), cwd=REPO_ROOT, env=env)
    if result.returncode != 0:
        raise DeployError(f"`{' '.join(command)}` failed with exit code {result.returncode}")


def check_lambda_python(which: Callable[[str], str | None] = shutil.which) -> None:
    """`sam build` needs the functions' runtime version of Python on PATH."""
    path = which(LAMBDA_PYTHON)
    works = False
    if path:
        try:
            works = subprocess.run([path, "--version"], capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            works = False
    if not works:
        raise DeployError(
            f"`sam build` needs {LAMBDA_PYTHON} on PATH (the Lambda runtime of template.yaml); "
            f"{'the one found does not run (a pyenv shim?)' if path else 'none was found'}. "
            "Install it (for example `uv python install 3.13` and add its directory to PATH), then run make deploy again."
        )


def samconfig(path: Path = SAMCONFIG) -> dict:
    return tomllib.loads(path.read_text()) if path.exists() else {}


def deploy_settings(config: dict) -> dict:
    """stack_name, region, profile and whether parameters were saved, from samconfig.toml."""
    default = config.get("default", {})
    merged = {**default.get("global", {}).get("parameters", {}), **default.get("deploy", {}).get("parameters", {})}
    return {
        "stack_name": merged.get("stack_name"),
        "region": merged.get("region"),
        "profile": merged.get("profile"),
        "has_parameters": bool(merged.get("parameter_overrides")),
    }


def stack_outputs(cloudformation, stack_name: str) -> dict[str, str]:
    stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    if not stacks:
        raise DeployError(f"stack {stack_name} not found")
    return {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}


def require(outputs: dict[str, str], key: str, stack_name: str) -> str:
    if key not in outputs:
        raise DeployError(f"stack {stack_name} has no output {key}: is it this project's template?")
    return outputs[key]


def dataset_specs(directory: Path = DATASETS) -> dict[str, Path]:
    """Every datasets/*.json by dataset name. The file's stem must be the spec's
    name: a run finds the spec by the name its upload key says, and the name
    decides the production endpoint. Checked before anything is uploaded."""
    specs, problems = {}, []
    for path in sorted(directory.glob("*.json")):
        try:
            name = json.loads(path.read_text(encoding="utf-8")).get("name")
        except (ValueError, AttributeError) as error:
            problems.append(f"{path.name} is not a JSON object ({error})")
            continue
        if name != path.stem or not DATASET_NAME.fullmatch(path.stem):
            problems.append(f"{path.name} names dataset {name!r}: the file must be datasets/<name>.json with a name of "
                            f"{DATASET_NAME_RULE}")
            continue
        try:
            # The Glue job's own check: a spec it would refuse (one too wide for the serving
            # container's schema variable, say) is refused here, before the stack changes.
            parse_spec(json.loads(path.read_text(encoding="utf-8")))
        except ValueError as error:
            problems.append(f"{path.name}: {error}")
            continue
        specs[name] = path
    if problems:
        raise DeployError("dataset specs not uploaded: " + "; ".join(problems))
    if not specs:
        raise DeployError(f"no dataset specs in {directory}")
    return specs


def upload_glue_dependencies(s3, outputs: dict[str, str], stack_name: str, specs: dict[str, Path]) -> list[str]:
    bucket = require(outputs, "ArtifactsBucketName", stack_name)
    uploaded = []
    for name, path in sorted(specs.items()):
        key = f"{SPEC_PREFIX}{name}.json"
        s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": "application/json"})
        uploaded.append(f"s3://{bucket}/{key}")
    return uploaded


def build_glue_package(target: Path, packages: Sequence[Path] = GLUE_PACKAGES) -> Path:
    """The zip of the Glue job's packages: every .py file of each, under the package's name. The
    same sources give the same bytes (sorted entries, a fixed timestamp), so an unchanged job
    uploads an unchanged object."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for package in packages:
            for path in sorted(package.rglob("*.py")):
                if "__pycache__" in path.parts:
                    continue
                entry = zipfile.ZipInfo(str(path.relative_to(package.parent)), date_time=(1980, 1, 1, 0, 0, 0))
                entry.external_attr = 0o644 << 16
                archive.writestr(entry, path.read_bytes(), compress_type=zipfile.ZIP_DEFLATED)
    return target


def upload_glue_package(s3, outputs: dict[str, str], stack_name: str, package: Path) -> str:
    bucket = require(outputs, "ArtifactsBucketName", stack_name)
    s3.upload_file(str(package), bucket, GLUE_PACKAGE_KEY, ExtraArgs={"ContentType": "application/zip"})
    return f"s3://{bucket}/{GLUE_PACKAGE_KEY}"


def boto3_session(settings: dict):
    import boto3

    return boto3.Session(profile_name=settings.get("profile"), region_name=settings.get("region"))


def deploy(run: Runner = run_command, session_factory=boto3_session, guided: bool | None = None,
           which: Callable[[str], str | None] = shutil.which) -> int:
    check_lambda_python(which)
    specs = dataset_specs()  # a misnamed spec stops the deploy before anything changes
    settings = deploy_settings(samconfig())
    template = load_template(TEMPLATE)
    check_stack_name(settings["stack_name"], template)  # before anything is built or deployed
    if guided is None:
        guided = not settings["has_parameters"]
    run(sam_command("build", "--template", str(TEMPLATE)))
    if guided:
        print(f"Stack name: at most {longest_stack_name(template)[0]} characters (the function names are built from it).")
    run(sam_command("deploy", *(["--guided"] if guided else [])))
    # --guided may have just chosen the stack name, region and profile: read them again.
    settings = deploy_settings(samconfig())
    if not settings["stack_name"]:
        raise DeployError("samconfig.toml names no stack_name after sam deploy")
    check_stack_name(settings["stack_name"], template)
    session = session_factory(settings)
    outputs = stack_outputs(session.client("cloudformation"), settings["stack_name"])
    s3 = session.client("s3")
    with tempfile.TemporaryDirectory(prefix="glue-package-") as workdir:
        package = build_glue_package(Path(workdir) / Path(GLUE_PACKAGE_KEY).name)
        print(f"uploaded {upload_glue_package(s3, outputs, settings['stack_name'], package)}")
    for uri in upload_glue_dependencies(s3, outputs, settings["stack_name"], specs):
        print(f"uploaded {uri}")
    print(
        "\nDeployed. Next:\n"
        "  1. Confirm the SNS subscription email (approval requests go to that address).\n"
        f"  2. Start a run: {require(outputs, 'UploadCommand', settings['stack_name'])}\n"
        f"  3. Watch it: {require(outputs, 'StateMachineArn', settings['stack_name'])}\n"
    )
    return 0


def empty_bucket(s3, bucket: str) -> int:
    """Delete every object version and delete marker (the buckets are versioned)."""
    deleted = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        batch = [
            {"Key": item["Key"], "VersionId": item["VersionId"]}
            for item in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for start in range(0, len(batch), 1000):
            chunk = batch[start:start + 1000]
            response = s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
            if response.get("Errors"):
                first = response["Errors"][0]
                raise DeployError(f"could not delete s3://{bucket}/{first['Key']}: {first.get('Message')}")
            deleted += len(chunk)
    return deleted


def production_endpoints(dynamodb, table: str, default_endpoint: str) -> list[str]:
    """Every production endpoint the pipeline has deployed: one per dataset, each
    with its lock item production#<endpoint> (deploy_production writes it first)."""
    found = {default_endpoint}
    request = {"TableName": table, "FilterExpression": "begins_with(pk, :p)",
               "ExpressionAttributeValues": {":p": {"S": "production#"}}, "ProjectionExpression": "pk"}
    for page in dynamodb.get_paginator("scan").paginate(**request):
        found |= {item["pk"]["S"][len("production#"):] for item in page.get("Items", [])}
    return sorted(found)


def delete_dataset_alarms(cloudwatch, stack_name: str, keep: set[str]) -> list[str]:
    """The rollback alarms deploy_production created for dataset endpoints
    (<stack>-production-<endpoint>-5xx/-latency); CloudFormation deletes its own (`keep`)."""
    names = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=f"{stack_name}-production-"):
        names += [alarm["AlarmName"] for alarm in page.get("MetricAlarms", []) if alarm["AlarmName"] not in keep]
    for start in range(0, len(names), 100):
        cloudwatch.delete_alarms(AlarmNames=names[start:start + 100])
    return names


def delete_production_endpoint(sagemaker, endpoint_name: str) -> bool:
    """The pipeline creates the production endpoint itself, so `sam delete` would leave it running."""
    from botocore.exceptions import ClientError

    try:
        sagemaker.delete_endpoint(EndpointName=endpoint_name)
    except ClientError as error:
        if "Could not find endpoint" in error.response.get("Error", {}).get("Message", ""):
            return False
        raise
    return True


def stop_access_logs(s3, sources: list[str], log_bucket: str) -> None:
    """S3 delivers server access logs late (hours, best effort), so an emptied log
    bucket refills and CloudFormation cannot delete it. Turn logging off on the
    source buckets, then remove the log bucket's policy: its grant to the logging
    service (logging.s3.amazonaws.com) is the only way logs get in, so deliveries
    still in flight are refused from here on. CloudFormation deletes the policy
    resource anyway."""
    for bucket in sources:
        s3.put_bucket_logging(Bucket=bucket, BucketLoggingStatus={})
    s3.delete_bucket_policy(Bucket=log_bucket)


def delete_stack(run: Runner, command: list[str], s3, buckets: list[str], attempts: int, wait_seconds: float,
                 sleep: Callable[[float], None]) -> None:
    """`sam delete`, emptying the buckets again before each retry: a log that was
    already in flight can still land after the first emptying."""
    for attempt in range(1, attempts + 1):
        try:
            run(command)
            return
        except DeployError as error:
            if attempt == attempts:
                raise DeployError(
                    f"{error} ({attempts} attempts). Empty {', '.join(buckets)} again and run teardown once more; "
                    "the stack is DELETE_FAILED and a second delete resumes it"
                ) from None
            print(f"sam delete failed (attempt {attempt} of {attempts}); emptying the buckets again in {wait_seconds:.0f} s")
            sleep(wait_seconds)
            for bucket in buckets:
                print(f"emptied s3://{bucket} again ({empty_bucket(s3, bucket)} object versions)")


def deployed_stack(session_factory, otherwise: str):
    """(settings, session, outputs) of the stack samconfig.toml names."""
    settings = deploy_settings(samconfig())
    if not settings["stack_name"]:
        raise DeployError(f"samconfig.toml names no stack_name: {otherwise}")
    session = session_factory(settings)
    return settings, session, stack_outputs(session.client("cloudformation"), settings["stack_name"])


def teardown(run: Runner = run_command, session_factory=boto3_session, confirm: Callable[[str], str] = input,
             assume_yes: bool = False, attempts: int = 3, wait_seconds: float = 60.0,
             sleep: Callable[[float], None] = time.sleep) -> int:
    settings, session, outputs = deployed_stack(session_factory, "nothing to tear down")
    stack_name = settings["stack_name"]
    endpoints = production_endpoints(session.client("dynamodb"), require(outputs, "StateTableName", stack_name),
                                     require(outputs, "ProductionEndpointName", stack_name))
    buckets = [require(outputs, key, stack_name) for key in ("InputBucketName", "ArtifactsBucketName", "AccessLogsBucketName")]
    if not assume_yes:
        answer = confirm(
            f"Delete production endpoints {', '.join(endpoints)}, every object in {', '.join(buckets)} and stack "
            f"{stack_name}? Type the stack name to confirm: "
        )
        if answer.strip() != stack_name:
            print("teardown: not confirmed, nothing deleted")
            return 1
    sagemaker = session.client("sagemaker")
    for endpoint in endpoints:
        if delete_production_endpoint(sagemaker, endpoint):
            print(f"deleting endpoint {endpoint}")
    for alarm in delete_dataset_alarms(session.client("cloudwatch"), stack_name,
                                       {f"{stack_name}-production-5xx", f"{stack_name}-production-latency"}):
        print(f"deleted alarm {alarm}")
    s3 = session.client("s3")
    input_bucket, artifacts_bucket, log_bucket = buckets
    stop_access_logs(s3, [input_bucket, artifacts_bucket], log_bucket)
    print(f"stopped access logging into s3://{log_bucket}")
    for bucket in buckets:
        print(f"emptied s3://{bucket} ({empty_bucket(s3, bucket)} object versions)")
    delete_stack(run, sam_command("delete", "--stack-name", stack_name, "--no-prompts",
                                  *(["--region", settings["region"]] if settings["region"] else [])),
                 s3, buckets, attempts, wait_seconds, sleep)
    print("QA endpoints of runs that were still in progress, and models/endpoint configs, "
          "are listed in the SageMaker console under names ending in -qa, -model and -config.")
    return 0


def registry_versions(sagemaker, group: str) -> list[dict]:
    """The group's versions, oldest first: version, status, description, run, QA accuracy."""
    found, request = [], {"ModelPackageGroupName": group, "SortBy": "CreationTime", "SortOrder": "Ascending"}
    while True:
        page = sagemaker.list_model_packages(**request)
        for summary in page.get("ModelPackageSummaryList", []):
            package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            metadata = package.get("CustomerMetadataProperties") or {}
            found.append({"version": package.get("ModelPackageVersion"), "status": package.get("ModelApprovalStatus"),
                          "description": package.get("ApprovalDescription") or "", "run_id": metadata.get("run_id"),
                          "qa_accuracy": metadata.get("qa_accuracy"), "arn": package["ModelPackageArn"]})
        if not page.get("NextToken"):
            return found
        request["NextToken"] = page["NextToken"]


def dataset_endpoint(outputs: dict[str, str], stack_name: str, dataset: str | None) -> tuple[str, str]:
    """The dataset and its production endpoint (= its model package group), as resolve_dataset names them."""
    default = require(outputs, "DefaultDataset", stack_name)
    dataset = dataset or default
    if not DATASET_NAME.fullmatch(dataset):
        raise DeployError(f"{dataset!r} is not a dataset name ({DATASET_NAME_RULE})")
    if dataset == default:
        return dataset, require(outputs, "ProductionEndpointName", stack_name)
    return dataset, dataset + require(outputs, "ProductionEndpointSuffix", stack_name)


def rollback(version: int | None, list_only: bool = False, session_factory=boto3_session,
             now: Callable[[], float] = time.time, dataset: str | None = None) -> int:
    """Start the pipeline's rollback of a dataset's production endpoint (its documented input);
    the approval email asks for confirmation."""
    settings, session, outputs = deployed_stack(session_factory, "deploy first")
    stack_name = settings["stack_name"]
    # Each dataset's production endpoint has its own model package group, named after it.
    dataset, endpoint = dataset_endpoint(outputs, stack_name, dataset)
    group = endpoint
    versions = registry_versions(session.client("sagemaker"), group)
    for entry in versions:
        print(f"version {entry['version']}: {entry['status']:<22} run {entry['run_id']}, QA accuracy "
              f"{entry['qa_accuracy']}  {entry['description']}")
    if list_only:
        return 0
    chosen = next((entry for entry in versions if entry["version"] == version), None)
    if chosen is None or chosen["status"] != "Approved":
        raise DeployError(f"version {version} of {group} is {'not there' if chosen is None else chosen['status']}: "
                          "only an Approved version can be rolled back to")
    name = f"rollback-v{version}-{int(now())}"
    execution = session.client("stepfunctions").start_execution(
        stateMachineArn=require(outputs, "StateMachineArn", stack_name), name=name,
        input=json.dumps({"rollback": {"model_package_version": version, "dataset": dataset}}))
    print(f"started {execution['executionArn']}")
    print(f"A confirmation email asks to roll {endpoint} back to version {version}; nothing changes until someone "
          "approves it on its page. Then the same blue/green deployment and alarms apply.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    deploy_parser = commands.add_parser("deploy", help="sam build + sam deploy + upload the Glue job's zip and the dataset specs")
    deploy_parser.add_argument("--guided", action=argparse.BooleanOptionalAction, default=None,
                               help="force (or skip) sam deploy --guided; default: guided until parameters are saved")
    teardown_parser = commands.add_parser("teardown", help="delete the production endpoints, empty the buckets, sam delete")
    teardown_parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    rollback_parser = commands.add_parser("rollback", help="redeploy an earlier approved model version (confirmed by email)")
    choice = rollback_parser.add_mutually_exclusive_group(required=True)
    choice.add_argument("--version", type=int, help="the model package version to redeploy")
    choice.add_argument("--list", action="store_true", help="only list the registry's versions")
    rollback_parser.add_argument("--dataset", help="the dataset whose production endpoint rolls back (default: DefaultDataset)")
    args = parser.parse_args(argv)
    try:
        if args.command == "deploy":
            return deploy(guided=args.guided)
        if args.command == "rollback":
            return rollback(args.version, list_only=args.list, dataset=args.dataset)
        return teardown(assume_yes=args.yes)
    except DeployError as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
