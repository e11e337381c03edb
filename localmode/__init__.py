"""Local mode: the pipeline's real state machine, Glue job, Lambda handlers
and model artifacts on one machine, with moto standing in for AWS APIs."""
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Where AWS finds the shared code, from this checkout: functions/common is the Lambda layer (its
# /opt/python: pipeline_common, dataset_spec), glue/ is what the Glue job's --extra-py-files zip
# puts on its Python path (preprocessing; the zip holds dataset_spec too).
for _path in (REPO_ROOT / "functions" / "common", REPO_ROOT / "glue"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
