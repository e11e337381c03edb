"""`python -m localmode <command>`: the local pipeline's console entry point."""
from __future__ import annotations

import argparse
import importlib
import sys

# Each command lives in its own module and exposes `main(argv) -> int`;
# importing lazily keeps `--help` fast (no Spark, no moto).
COMMANDS = {
    "run": ("localmode.runner", "run the whole pipeline: the real state machine on moto with local workers"),
    "rollback": ("localmode.rollback_cli", "make approved runs, then roll production back to an earlier version"),
    "glue": ("localmode.glue_local", "run the Glue job on local Spark: --data CSV --out DIR"),
    "data": ("localmode.data_cli", "download and verify the dataset, or check a given path"),
    "spec": ("localmode.spec_draft", "draft a dataset spec from a CSV with a header: draft DATA --label COLUMN"),
    "datasets": ("localmode.datasets", "write the test datasets (penguins, breast-cancer, diabetes): build NAME --out DIR"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m localmode", description=__doc__)
    parser.add_argument("command", choices=sorted(COMMANDS), help="; ".join(f"{k}: {v[1]}" for k, v in COMMANDS.items()))
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    args, rest = parser.parse_known_args(argv[:1])
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
