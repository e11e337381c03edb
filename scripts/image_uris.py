"""The template's per-region container image URIs, generated from the sagemaker
Python SDK's own tables.

The SDK's `image_uris.retrieve("xgboost", region, version="1.7-1")` and
`("sparkml-serving", region, version="3.3")` read
`sagemaker/image_uri_config/xgboost.json` and `sparkml-serving.json` inside
its wheel. This script downloads that wheel (no dependencies, nothing
installed), reads both tables and writes the `ImageUris` mapping between the
GENERATED markers of template.yaml, for every region of the standard `aws`
partition that has both images (the pipeline needs both). The ECR host is built
the way the SDK builds it: `<account>.dkr.ecr.<region>.<DNS suffix of the
region's partition>`, with the partition data botocore ships.

Only the `aws` partition: the state machine definition names its integrations
`arn:aws:states:::...`, and nothing here has been checked in China
(`aws-cn`), GovCloud (`aws-us-gov`) or the ISO partitions (their service
principals, endpoints and service availability differ), so offering those
regions would let a deploy succeed into a stack that cannot run.

    python scripts/image_uris.py --check   # exit 1 when template.yaml differs
    python scripts/image_uris.py --write   # rewrite the generated block
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SAGEMAKER_SDK_VERSION = "2.257.7"
XGBOOST_VERSION = "1.7-1"
SPARKML_SERVING_VERSION = "3.3"
# Mapping attribute -> (SDK table, scope inside it or None, version)
IMAGES = {
    "XGBoost": ("xgboost.json", "training", XGBOOST_VERSION),
    "SparkMLServing": ("sparkml-serving.json", None, SPARKML_SERVING_VERSION),
}

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "template.yaml"
BEGIN = "  # BEGIN GENERATED IMAGE URIS"
END = "  # END GENERATED IMAGE URIS"


class SdkUnavailable(RuntimeError):
    """The sagemaker wheel could not be downloaded (no route to PyPI)."""


def pip_python() -> str:
    """A Python with pip: the uv-made .venv has none, the Makefile's bootstrap venv does."""
    candidates = [str(REPO_ROOT / ".cache" / "bootstrap" / "bin" / "python"), sys.executable, "python3"]
    for candidate in candidates:
        try:
            probe = subprocess.run([candidate, "-m", "pip", "--version"], capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return candidate
    raise SdkUnavailable(f"no Python with pip to download the sagemaker wheel (tried {', '.join(candidates)})")


def download_sdk_wheel(directory: Path) -> Path:
    command = [
        pip_python(), "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
        "--only-binary", ":all:", "--dest", str(directory), f"sagemaker=={SAGEMAKER_SDK_VERSION}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    wheels = sorted(directory.glob(f"sagemaker-{SAGEMAKER_SDK_VERSION}-*.whl"))
    if result.returncode != 0 or not wheels:
        raise SdkUnavailable(
            f"could not download sagemaker=={SAGEMAKER_SDK_VERSION} from PyPI "
            f"(pip exit {result.returncode}): {result.stderr.strip()[-500:]}"
        )
    return wheels[0]


def read_sdk_tables(wheel: Path) -> dict[str, dict]:
    with zipfile.ZipFile(wheel) as archive:
        return {
            table: json.loads(archive.read(f"sagemaker/image_uri_config/{table}"))
            for table in {spec[0] for spec in IMAGES.values()}
        }


def registries(tables: dict[str, dict], table: str, scope: str | None, version: str) -> tuple[dict[str, str], str]:
    """(region -> account, repository name) of one image version."""
    config = tables[table]
    if scope is not None:
        config = config[scope]
    versions = config["versions"]
    if version not in versions:
        raise KeyError(f"{table} has no version {version} (has {sorted(versions)})")
    return versions[version]["registries"], versions[version]["repository"]


SUPPORTED_PARTITION = "aws"


def partition_of(region: str, partitions: list[dict]) -> dict:
    """botocore's partition for a region: its explicit region list first, then the regex."""
    for partition in partitions:
        if region in partition.get("regions", {}):
            return partition
    for partition in partitions:
        if re.match(partition["regionRegex"], region):
            return partition
    raise KeyError(f"no botocore partition matches region {region}")


def dns_suffix(region: str, partitions: list[dict]) -> str:
    return partition_of(region, partitions)["dnsSuffix"]


def botocore_partitions() -> list[dict]:
    import botocore.loaders

    return botocore.loaders.create_loader().load_data("endpoints")["partitions"]


def image_uris(tables: dict[str, dict], partitions: list[dict]) -> dict[str, dict[str, str]]:
    """{region: {attribute: image URI}} for the `aws` partition's regions that have every image."""
    per_image = {}
    for attribute, (table, scope, version) in IMAGES.items():
        accounts, repository = registries(tables, table, scope, version)
        per_image[attribute] = (accounts, repository, version)
    regions = sorted(
        region for region in set.intersection(*(set(accounts) for accounts, _, _ in per_image.values()))
        if partition_of(region, partitions)["partition"] == SUPPORTED_PARTITION
    )
    result = {}
    for region in regions:
        suffix = dns_suffix(region, partitions)
        result[region] = {
            attribute: f"{accounts[region]}.dkr.ecr.{region}.{suffix}/{repository}:{version}"
            for attribute, (accounts, repository, version) in per_image.items()
        }
    return result


def render_block(uris: dict[str, dict[str, str]]) -> str:
    lines = [
        f"{BEGIN}: scripts/image_uris.py --write (sagemaker=={SAGEMAKER_SDK_VERSION}, "
        f"xgboost {XGBOOST_VERSION}, sparkml-serving {SPARKML_SERVING_VERSION}; "
        f"{SUPPORTED_PARTITION} partition only). Do not edit by hand.",
        "  ImageUris:",
    ]
    for region, images in uris.items():
        lines.append(f"    {region}:")
        for attribute in IMAGES:
            lines.append(f"      {attribute}: {images[attribute]}")
    lines.append(END)
    return "\n".join(lines)


def current_block(template_text: str) -> str:
    start = template_text.index(BEGIN)
    end = template_text.index(END, start) + len(END)
    return template_text[start:end]


def generate() -> str:
    with tempfile.TemporaryDirectory(prefix="sagemaker-sdk-") as tmp:
        tables = read_sdk_tables(download_sdk_wheel(Path(tmp)))
    return render_block(image_uris(tables, botocore_partitions()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 if template.yaml's mapping is not what the SDK says")
    mode.add_argument("--write", action="store_true", help="rewrite the mapping in template.yaml")
    args = parser.parse_args(argv)
    try:
        block = generate()
    except SdkUnavailable as error:
        print(f"image_uris: {error}", file=sys.stderr)
        return 2
    text = TEMPLATE.read_text()
    if args.write:
        TEMPLATE.write_text(text.replace(current_block(text), block))
        print(f"image_uris: wrote the ImageUris mapping into {TEMPLATE.name}")
        return 0
    if current_block(text) != block:
        print("image_uris: template.yaml's ImageUris mapping differs from the SDK tables; run scripts/image_uris.py --write",
              file=sys.stderr)
        return 1
    print("image_uris: template.yaml matches the SDK tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
