"""The ``mefr`` command: a thin shell over the Python API.

Each sub-command is one ``_add_<name>`` function that declares its arguments and points
at one ``_run_<name>`` function, which calls the API and prints. No computation lives
here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

Adder = Callable[[argparse._SubParsersAction], None]
_ADDERS: list[Adder] = []


def command(adder: Adder) -> Adder:
    """Register a sub-command declaration (kept in the order of this file)."""
    _ADDERS.append(adder)
    return adder


# --------------------------------------------------------------------------- models
@command
def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the networks and their parameter counts")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from mefr.models.registry import model_specs

    specs = model_specs()
    if args.json:
        print(json.dumps(specs, indent=2))
    else:
        print(f"{'name':<20} {'K':>2} {'detector':>8} {'parameters':>12}")
        for s in specs:
            det = str(s.get("detector_units", "-"))
            print(f"{s['name']:<20} {s['num_classes']:>2} {det:>8} {s['parameters']:>12,}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mefr",
        description="Micro-expression recognition with Feature Refinement (FR).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for adder in _ADDERS:
        adder(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        if "demo" in parser._subparsers._group_actions[0].choices:  # type: ignore[union-attr]
            args = parser.parse_args(["demo"])
        else:
            parser.print_help()
            return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
