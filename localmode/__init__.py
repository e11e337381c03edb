"""Local mode: the pipeline's real state machine, Glue script, Lambda handlers
and model artifacts on one machine, with moto standing in for AWS APIs."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
