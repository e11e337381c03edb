"""`python -m localmode data [--data PATH]`: fetch (or check) the dataset and print its path."""
from __future__ import annotations

import argparse
import sys

from localmode import data


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m localmode data", description=__doc__)
    parser.add_argument("--data", help="use this file instead of downloading")
    parser.add_argument("--spec", default=str(data.DEFAULT_SPEC), help="dataset spec (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        path = data.resolve(args.data, data.load_spec(args.spec))
    except data.DataUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0
