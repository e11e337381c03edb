"""Which dataset a run is about, where its spec lives, and its production endpoint.

The upload's key names the dataset: `<InputPrefix><dataset>/<file>` is a run
of `<dataset>`; a file directly under the prefix is a run of the default
dataset (DefaultDataset, `car`: what every upload was before datasets had
names). The spec is `s3://<ArtifactsBucket>/deps/datasets/<dataset>.json`
(`scripts/deploy.py` uploads every `datasets/*.json`).

Each dataset has its own production endpoint and deployment lock
(`production#<endpoint>`): the default dataset keeps ProductionEndpointName
(`car-evaluation`, so existing deployments keep their endpoint), any other is
`<dataset><ProductionEndpointSuffix>` (`penguins-prod`). A suffix, not a
prefix, keeps production and QA endpoints (`<run>-qa`) apart in IAM
patterns: `endpoint/*-prod` can never match `endpoint/*-qa`.
"""
from __future__ import annotations

import re

# The spec's `name` rule, the one the spec check applies: it becomes an S3 key and part of an endpoint name.
from dataset_spec import DATASET_NAME

SPEC_PREFIX = "deps/datasets/"
# SageMaker: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}; lower case for IAM (ARNs carry names in lower case).
ENDPOINT_SUFFIX = re.compile(r"-[a-z0-9](?:-*[a-z0-9]){0,22}")


def is_dataset_name(name) -> bool:
    return isinstance(name, str) and DATASET_NAME.fullmatch(name) is not None


def spec_key(dataset: str) -> str:
    return f"{SPEC_PREFIX}{dataset}.json"


def dataset_from_key(key: str, input_prefix: str, default_dataset: str) -> str:
    """The dataset an upload's key names: the first folder under the input
    prefix, or the default dataset for a file directly under it (or outside
    it: a console start names its dataset in the execution input). Not checked
    here: an unusable name fails the run with a message (resolve_dataset)."""
    if not key.startswith(input_prefix):
        return default_dataset
    folder, slash, _ = key[len(input_prefix):].partition("/")
    return folder if slash else default_dataset


def production_endpoint_for(dataset: str, default_dataset: str, default_endpoint: str, suffix: str) -> str:
    if dataset == default_dataset:
        return default_endpoint
    if not ENDPOINT_SUFFIX.fullmatch(suffix) or suffix.endswith("-qa"):
        raise ValueError(f"production endpoint suffix {suffix!r} must be '-' then lower-case letters, digits and "
                         "hyphens (at most 24 characters), not ending in -qa")
    endpoint = f"{dataset}{suffix}"
    if endpoint == default_endpoint:
        raise ValueError(f"dataset {dataset!r} would deploy to {endpoint}, which is {default_dataset!r}'s production "
                         "endpoint (ProductionEndpointName): choose another ProductionEndpointName or suffix")
    return endpoint
