"""The dataset spec and the constants the Lambda layer and the Glue job share.

Pure Python, standard library only, and the same files in both: the layer ships this folder
(template.yaml's PipelineCommonLayer, ContentUri functions/common/), the Glue job ships it in its
--extra-py-files zip (scripts/deploy.py builds it), and local mode, scripts/ and bench/ import it
from here (localmode puts functions/common on sys.path, as /opt/python is on Lambda).

- dataset_spec.spec: the one parser and checker of dataset specs (parse_spec, Layout, ColumnSpec);
- dataset_spec.names: the dataset-name rule (S3 keys, endpoint names; template.yaml repeats it);
- dataset_spec.gate: the quality gate's metrics, for the spec check and the QA step;
- dataset_spec.serving: SageMaker's limit on a container environment value, the serving schemas'
  shape, and the column names the job keeps for itself.
"""
from dataset_spec.gate import DEFAULT_GATE_METRIC, GATE_METRICS, PROBLEM_TYPES
from dataset_spec.names import DATASET_NAME, DATASET_NAME_PATTERN, DATASET_NAME_RULE
from dataset_spec.serving import MAX_ENVIRONMENT_VALUE, environment_value
from dataset_spec.spec import (NUMBER_PATTERN, ColumnSpec, InvalidSpec, Layout, as_layout, parse_spec, read_spec,
                               validate_spec)

__all__ = [
    "DEFAULT_GATE_METRIC", "GATE_METRICS", "PROBLEM_TYPES",
    "DATASET_NAME", "DATASET_NAME_PATTERN", "DATASET_NAME_RULE",
    "MAX_ENVIRONMENT_VALUE", "environment_value",
    "NUMBER_PATTERN", "ColumnSpec", "InvalidSpec", "Layout", "as_layout", "parse_spec", "read_spec", "validate_spec",
]
