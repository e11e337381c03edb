"""What the spec must fit in SageMaker SparkML Serving: the containers' schema documents, the
environment value that carries them, and the column names the Glue job keeps for itself."""
from __future__ import annotations

import json

# SageMaker caps each container environment value at 1024 characters (botocore's SageMaker model:
# EnvironmentValue, max 1024), and SparkML Serving reads a CSV request's schema only from the
# SAGEMAKER_SPARKML_SCHEMA variable: the feature names must fit in it. The spec check refuses a spec
# whose schema would not fit; functions/create_model checks the written schema against the same number.
MAX_ENVIRONMENT_VALUE = 1024

# Columns of the serving pipelines and of the job's own frames; a spec's column may not take these names.
FEATURES_COL = "features"
POSTPROCESS_INPUT = "label"
POSTPROCESS_OUTPUT = "predicted_label"
LABEL_INDEX_COL = "label_index"
RESERVED_COLUMNS = {FEATURES_COL, POSTPROCESS_INPUT, POSTPROCESS_OUTPUT, LABEL_INDEX_COL}


def preprocess_schema(feature_names: list[str]) -> dict:
    """The preprocess container's SAGEMAKER_SPARKML_SCHEMA document (every feature a string field:
    see preprocessing.bundle.sparkml_schemas)."""
    return {
        "input": [{"name": name, "type": "string"} for name in feature_names],
        "output": {"name": FEATURES_COL, "type": "double", "struct": "vector"},
    }


def environment_value(schema: dict) -> str:
    """The schema as create_model puts it in the container environment (compact JSON)."""
    return json.dumps(schema, separators=(",", ":"))


def environment_value_length(schema: dict) -> int:
    return len(environment_value(schema))
