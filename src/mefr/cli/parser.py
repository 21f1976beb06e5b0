"""The ``mefr`` parser and entry point.

Each command group is one module of this package with a ``COMMANDS`` tuple
(:class:`~mefr.cli.common.Command`); :data:`COMMAND_MODULES` lists them in the order
``mefr --help`` shows them. A new group (e.g. ``mefr.cli.audit``) is one more module and
one more line here.

Only the command being run declares its options (their choices and defaults come from
the library, which is slow to import): ``mefr --help`` imports nothing heavy.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence

from mefr.cli.common import Command, HelpFormatter

#: The command groups, in the order of ``mefr --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "mefr.cli.demo",
    "mefr.cli.data",
    "mefr.cli.models",
    "mefr.cli.evaluate",
    "mefr.cli.audit",
    "mefr.cli.report",
)
#: What plain ``mefr`` runs.
DEFAULT_COMMAND = "demo"
#: Set to 1 to see the traceback of an unexpected error.
TRACEBACK_ENV = "MEFR_TRACEBACK"


def commands() -> dict[str, Command]:
    """Every sub-command by name, in the order of :data:`COMMAND_MODULES`."""
    out: dict[str, Command] = {}
    for module in COMMAND_MODULES:
        for cmd in importlib.import_module(module).COMMANDS:
            out[cmd.name] = cmd
    return out


def build_parser(only: str | None | Sequence[str] = None) -> argparse.ArgumentParser:
    """The ``mefr`` parser. ``only``: the command(s) whose options are declared (the
    others are listed with their help line); ``None`` declares every command's."""
    cmds = commands()
    full = set(cmds) if only is None else {only} if isinstance(only, str) else set(only)
    parser = argparse.ArgumentParser(
        prog="mefr", formatter_class=HelpFormatter,
        description="Micro-expression recognition with Feature Refinement (FR).\nPlain "
        f"`mefr` runs `mefr {DEFAULT_COMMAND}`; `mefr COMMAND --help` shows a command's "
        "options\nand their defaults.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, cmd in cmds.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.description or cmd.help,
                           formatter_class=HelpFormatter)
        p.set_defaults(command_record=cmd)
        if name in full:
            cmd.add_arguments(p)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The command named in ``argv`` (its first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _format_warning(message: Warning | str, category: type[Warning], filename: str,
                    lineno: int, line: str | None = None) -> str:
    """A warning as one ``warning: ...`` line, without the source file and line."""
    return f"warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mefr ARGV``; return the exit status (130 after Ctrl-C, 141 when stdout's
    reader went away, 2 for a bad input, 1 for an unexpected error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:  # plain `mefr` runs the demo on the embedded default
        argv = [DEFAULT_COMMAND]
    parser = build_parser(_command_in(argv) or ())
    args = parser.parse_args(argv)
    if args.command is None:  # only options were given (e.g. `mefr --no-such`)
        parser.print_help()
        return 2
    cmd: Command = args.command_record
    formatter = warnings.formatwarning
    warnings.formatwarning = _format_warning
    try:
        status = int(cmd.run(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe fails here, not at shutdown
    except BrokenPipeError:
        # The reader went away (`mefr compare A B | head`): stop quietly with the
        # status of a process ended by SIGPIPE; files already written stay on disk.
        _discard_stdout()
        return 128 + 13
    except KeyboardInterrupt as e:
        kept = str(e) or (cmd.interrupted(args) if cmd.interrupted else "nothing was kept")
        print(f"\ninterrupted: {kept}", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get(TRACEBACK_ENV) == "1":
            raise
        print(f"error: {type(e).__name__}: {e} (set {TRACEBACK_ENV}=1 to see where)",
              file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = formatter
    return status


def _discard_stdout() -> None:
    """Point stdout at the null device, so the interpreter's final flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (tests)
        pass
