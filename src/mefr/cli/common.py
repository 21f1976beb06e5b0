"""What the command modules share: the command record, the help formatter, the
preprocessing options and small argument helpers.

Nothing here imports the library at module level: ``mefr --help`` stays instant, and a
command's own options (whose choices and defaults come from the library) are built only
when that command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mefr.preprocess.settings import PreprocessSettings


@dataclass(frozen=True)
class Command:
    """One sub-command: its name, one-line help, argument declaration and runner.

    ``interrupted`` says, for the arguments given, what Ctrl-C left on disk and how to
    resume (one line); ``None``: nothing was kept.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    interrupted: Callable[[argparse.Namespace], str] | None = None
    description: str | None = None


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (``(default: X)``) unless it is empty, ``None`` or
    ``False``, or the help already names it; descriptions and epilogs keep their lines."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or "default:" in text or not action.option_strings
                or default is None or default is False or default is argparse.SUPPRESS
                or default == [] or action.nargs == 0):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


def error(message: object, code: int = 2) -> int:
    """Print ``error: message`` on stderr and return the exit status ``code``."""
    print(f"error: {message}", file=sys.stderr)
    return code


def warn(message: object) -> None:
    """Print ``warning: message`` on stderr."""
    print(f"warning: {message}", file=sys.stderr)


def print_summary(result: Any) -> None:
    """Print a :class:`~mefr.evaluate.runner.RunResult`'s summary (its table and what was
    trained), unless the runner still prints it itself."""
    from mefr.evaluate import runner

    if result is not None and not getattr(runner, "PRINT_SUMMARY", False):
        print(result.summary(), end="")


def split_list(text: str) -> list[str]:
    """``"uf1, uar"`` -> ``["uf1", "uar"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]


def add_preprocess_options(p: argparse.ArgumentParser) -> None:
    """The options of :class:`~mefr.preprocess.settings.PreprocessSettings`, with its
    choices and defaults. ``--apex-policy`` and ``--descriptor`` default to the network's
    own (:func:`mefr.model_inputs.preprocess_settings`)."""
    from mefr.preprocess.apex import APEX_POLICIES
    from mefr.preprocess.flow import NORMALISATIONS
    from mefr.preprocess.register import REGISTRATIONS
    from mefr.preprocess.settings import DESCRIPTORS, FACE_MODES, PreprocessSettings

    d = PreprocessSettings()
    g = p.add_argument_group("preprocessing (see mefr.preprocess.PreprocessSettings)")
    g.add_argument("--apex-policy", choices=APEX_POLICIES, default=None,
                   help="default: the network's own (middle frame for dual_inception, else "
                   f"{d.apex_policy})")
    g.add_argument("--face", choices=FACE_MODES, default=d.face,
                   help="detect the face on the onset frame, or use whole frames")
    g.add_argument("--margin", type=float, default=d.margin, help="face box margin (fraction)")
    g.add_argument("--square", action="store_true", help="square face box")
    g.add_argument("--face-size", type=int, default=d.face_size,
                   help="resize face crops to this side before the flow (default: native)")
    g.add_argument("--size", type=int, default=d.size, help="side of the network input")
    g.add_argument("--strain", action="store_true", help="add the optical strain channel")
    g.add_argument("--normalisation", choices=NORMALISATIONS, default=d.normalisation,
                   help="flow normalisation")
    g.add_argument("--descriptor", choices=DESCRIPTORS, default=None,
                   help="flow (networks) or lbptop (hand-crafted baseline); default: what "
                   f"the model reads, else {d.descriptor}")
    g.add_argument("--lbp-grid", type=int, default=d.lbp_grid,
                   help="LBP-TOP: grid x grid face blocks")
    g.add_argument("--lbp-radius", type=int, default=d.lbp_radius,
                   help="LBP-TOP: radius (pixels, frames)")
    g.add_argument("--register", choices=REGISTRATIONS, default=d.register,
                   help="head-motion compensation: register every frame to the onset face "
                   "(similarity or affine) before the flow; none is the paper's pipeline")


def settings_from_args(args: argparse.Namespace, model: str | None = None
                       ) -> PreprocessSettings:
    """The preprocessing settings of the command line for ``model`` (see
    :func:`mefr.model_inputs.preprocess_settings`)."""
    from mefr.model_inputs import preprocess_settings

    given: dict[str, Any] = {
        "apex_policy": args.apex_policy, "face": args.face, "margin": args.margin,
        "square": args.square, "face_size": args.face_size, "size": args.size,
        "strain": args.strain, "normalisation": args.normalisation,
        "descriptor": args.descriptor, "lbp_grid": args.lbp_grid,
        "lbp_radius": args.lbp_radius, "register": getattr(args, "register", None),
    }
    return preprocess_settings(model, **given)


def training_epilog() -> str:
    """The ``--set`` keys and the presets, for the help of the training commands."""
    import dataclasses
    import textwrap

    from mefr.train.config import PRESETS, TrainConfig

    keys = textwrap.fill(", ".join(f.name for f in dataclasses.fields(TrainConfig)),
                         width=88, initial_indent="  ", subsequent_indent="  ")
    lines = ["--set KEY=VALUE keys (mefr.train.config.TrainConfig; values are YAML,",
             "e.g. --set lr=1e-3 --set channels=[u,v]):", keys, "", "presets (--preset):"]
    for name, settings in PRESETS.items():
        text = ", ".join(f"{k} {v}" for k, v in settings.items())
        lines.append(f"  {name:<13} {text}")
    return "\n".join(lines)


def training_overrides(args: argparse.Namespace) -> list[str]:
    """``--model`` and ``--epochs`` as ``--set`` overrides, before the explicit ones."""
    out = [f"model={args.model}"] if getattr(args, "model", None) else []
    if getattr(args, "epochs", None) is not None:
        out.append(f"epochs={args.epochs}")
    return out + list(args.overrides)


def add_training_options(p: argparse.ArgumentParser, default_preset: str = "cde") -> None:
    """``--model --preset --config --set --epochs`` (resolved by
    :func:`mefr.train.config.resolve_config`)."""
    p.add_argument("--model", default=None,
                   help="network name (overrides preset and file; see `mefr models`)")
    p.add_argument("--preset", default=default_preset, metavar="NAME",
                   help="training preset (listed below)")
    p.add_argument("--config", default=None, metavar="FILE", help="YAML training settings")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one training setting (repeatable; keys below)")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs (the same as --set epochs=N; default: the preset's)")
