"""What a network needs of its inputs, in one place for the CLI, the reports and scripts.

* :func:`preprocess_settings` - the preprocessing settings of a clip for a network: what
  is given, the rest from the network's registry entry (Dual-Inception reads
  onset->middle-frame flow, ``lbptop_svm`` LBP-TOP histograms) and the defaults of
  :class:`~mefr.preprocess.settings.PreprocessSettings`.
* :func:`flowset_serves` / :func:`check_flowset_serves` - whether a pre-computed flow
  set (onset->annotated-apex flow) can feed a network.
* :func:`check_channels` - whether features made with some settings hold the channels
  a training configuration reads, with the fix when they do not.
* :func:`labels_for_protocol` - the label mapping a split protocol implies by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mefr.preprocess.settings import PreprocessSettings

#: What a pre-computed flow set holds: ``(descriptor, apex policy)``.
FLOWSET_INPUT: tuple[str, str] = ("flow", "annotated")


def preprocess_settings(model: str | None = None, **given: Any) -> PreprocessSettings:
    """The preprocessing settings for ``model``: ``given`` first (``None`` values count as
    not given), then the network's own apex policy and descriptor, then the defaults.

    >>> preprocess_settings("dual_inception").apex_policy
    'middle'
    >>> preprocess_settings("lbptop_svm", size=32).descriptor
    'lbptop'
    >>> preprocess_settings(apex_policy="diff").descriptor
    'flow'
    """
    from mefr.preprocess.settings import PreprocessSettings

    chosen = {k: v for k, v in given.items() if v is not None}
    if model:
        from mefr.models.registry import model_entry

        entry = model_entry(model)
        chosen.setdefault("apex_policy", entry.apex_policy)
        chosen.setdefault("descriptor", entry.descriptor)
    return PreprocessSettings(**chosen)


def flowset_serves(model: str) -> bool:
    """Whether a flow set (onset->annotated-apex flow) holds the inputs ``model`` reads.

    >>> flowset_serves("fr"), flowset_serves("dual_inception"), flowset_serves("lbptop_svm")
    (True, False, False)
    """
    from mefr.models.registry import model_entry

    entry = model_entry(model)
    return (entry.descriptor, entry.apex_policy) == FLOWSET_INPUT


def check_flowset_serves(model: str, source: str = "the flow set") -> None:
    """Raise ``ValueError`` (saying what to use instead) unless a flow set serves ``model``."""
    if flowset_serves(model):
        return
    from mefr.models.registry import model_entry

    entry = model_entry(model)
    raise ValueError(
        f"--model {model} needs {entry.descriptor} inputs with the {entry.apex_policy!r} apex; "
        f"{source} holds onset->annotated-apex flow. Use --data with the raw databases instead")


def check_channels(channels: Sequence[str], settings: PreprocessSettings) -> None:
    """Raise ``ValueError`` with the fix when features made with ``settings`` lack one of
    ``channels`` (e.g. STSTNet's ``strain`` without ``--strain``).

    >>> from mefr.preprocess.settings import PreprocessSettings
    >>> check_channels(["u", "v"], PreprocessSettings())  # nothing missing: no error
    >>> try:
    ...     check_channels(["u", "v", "strain"], PreprocessSettings())
    ... except ValueError as e:
    ...     print(str(e).split("(")[1])
    add the strain channel: --strain)
    """
    have = list(settings.channels)
    missing = [c for c in channels if c not in have]
    if not missing:
        return
    hint = " (add the strain channel: --strain)" if "strain" in missing else ""
    raise ValueError(f"the training config reads channels {list(channels)} but the features "
                     f"will have {have}{hint}")


def labels_for_protocol(protocol: str) -> str:
    """The label mapping (:mod:`mefr.data.labels`) a split protocol uses by default:
    ``cdmer`` for ``cdmer:<n>`` (Table 11), else ``cde`` (Table 9).

    >>> labels_for_protocol("cdmer:3"), labels_for_protocol("loso:casme2")
    ('cdmer', 'cde')
    """
    return "cdmer" if protocol == "cdmer" or protocol.startswith("cdmer:") else "cde"
