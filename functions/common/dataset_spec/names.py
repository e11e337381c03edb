"""The dataset name: it becomes part of S3 keys (`input/<dataset>/`, `deps/datasets/<dataset>.json`)
and of SageMaker resource names (the production endpoint `<dataset><suffix>`, its model package
group), so lower-case letters, digits and inner hyphens, at most 32 characters.

template.yaml's DefaultDataset parameter repeats the pattern as its AllowedPattern (CloudFormation
reads nothing else); tests/functions/test_fn_resolve_dataset.py checks that the two are the same text.
"""
from __future__ import annotations

import re

# Without anchors: re.fullmatch anchors it, and the template's AllowedPattern is "^" + this + "$".
DATASET_NAME_PATTERN = r"[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?"
DATASET_NAME = re.compile(DATASET_NAME_PATTERN)
# How messages state the rule.
DATASET_NAME_RULE = "1-32 lower-case letters, digits or inner hyphens"
