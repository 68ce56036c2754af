"""Every experiment's ``--help`` on one screen: at most 130 lines, none wider than 100 characters
at ``COLUMNS=100`` (``tests/test_cli.py`` holds both). ``-H`` / ``--help-verbose`` adds the whole
description and every option's meaning (tyro's verbose help).

The text above tyro's option list: the experiment's description (its title and examples; all of
it with ``-H``) wrapped to the terminal, one line per variant (the flags in which it differs from
the first), the options parsed before the config's own (``tinyjax.cli._split``) with their units
and defaults, and the forms ``--model`` and ``--dataset`` take. Below it, tyro lists every config
field as ``--flag UNIT (default: value)`` (``tinyjax.config``'s metavars name the units)."""

from __future__ import annotations

import os
import textwrap
from typing import Mapping

from tinyjax.config import Config
from tinyjax.flags import flag, flat

# The options tinyjax.cli parses before the config's (flag and value, then what it does).
RUN_OPTIONS = (
    ("--variant NAME", "the base config: one of the variants above (default: the first)"),
    ("--sweep", "train every variant, the other flags applied to each; one results table"),
    ("--seeds N|S,S,..", "seeds 0..N-1 (or those listed) as one run: mean, std (default: --seed)"),
    ("--grid [F=V,V ...]", "every point of a grid, e.g. lr=0.01,0.1 (default: the experiment's own)"),
    ("--halving ETA", "with --grid: keep the best 1/ETA at each rung (needs --val-split)"),
    ("--find-lr [MIN:MAX:K]", "range test of K log-spaced rates (default 1e-5:1:16), no training"),
    ("--find-lr-steps N", "optimizer steps per rate of --find-lr (default 200)"),
    ("--resume RUN_DIR", "continue that run, search or range test from its latest checkpoint"),
    ("--coordinator HOST:PORT", "join one run's processes (auto: jax finds them; not needed under srun)"),
    ("--num-processes N", "the processes of that run (with --coordinator)"),
    ("--process-id I", "this process's place among them, 0..N-1 (with --coordinator)"),
    ("--debug", "show tracebacks instead of one error line"),
)
HELP_FLAGS = ("-h", "--help", "-H", "--help-verbose")


def width() -> int:
    """The help's width: ``$COLUMNS`` (as tyro reads it), at most 100."""
    try:
        return min(100, int(os.environ.get("COLUMNS", "100")))
    except ValueError:
        return 100


def help_text(variants: Mapping[str, Config], description: str | None, verbose: bool) -> str:
    """The text above tyro's option list (see the module docstring)."""
    from tinyjax.data.dataset import BUILTIN  # Imported for --help only: it imports numpy.
    from tinyjax.models import PRESETS  # Imports flax: --help only.

    w = width()
    parts = [_wrap(_described(description or "", verbose), w)]  # tyro keeps a line that starts with no letter.
    if len(variants) > 1:
        first = flat(next(iter(variants.values())))
        lines = []
        for name, config in variants.items():
            changed = [f"{flag(k)} {_value(v)}" for k, v in flat(config).items()
                       if k not in ("variant", "experiment") and v != first[k]]
            lines.append("  " + textwrap.shorten(f"{name}: {' '.join(changed) or '(the base config)'}", w - 2,
                                                 placeholder=" ..."))
        parts.append("variants (--variant NAME):\n" + "\n".join(lines))
    column = max(len(f) for f, _ in RUN_OPTIONS) + 4
    parts.append("run options:\n" + "\n".join(
        textwrap.fill(text, w, initial_indent=f"  {name:<{column - 2}}", subsequent_indent=" " * column)
        for name, text in RUN_OPTIONS))
    parts.append(_fill(f"--model: a preset ({', '.join(sorted(PRESETS))}) or an import reference to a flax linen or "
                       "nnx module, package.module:attr or path/to/file.py:attr.", w) + "\n"
                 + _fill(f"--dataset: {', '.join(BUILTIN)}, a .npz (x_train, y_train[, x_test, y_test, class_names]), a "
                         "folder of class folders (--image-size H,W), or a TFDS name (kmnist, emnist/balanced, ...).", w))
    return "\n\n".join(parts)


def _described(description: str, verbose: bool) -> list[list[str]]:
    """The description's paragraphs (lists of lines): all of them with ``verbose``, else the first."""
    paragraphs = [p.split("\n") for p in description.strip().split("\n\n") if p.strip()]
    if verbose or not paragraphs:
        return paragraphs
    return [paragraphs[0] + ["(-H: its examples and recipe, and what every option means.)"]]


def _wrap(paragraphs: list[list[str]], w: int) -> str:
    """Prose paragraphs filled to ``w`` columns; indented ones (commands) kept as they are."""
    return "\n\n".join("\n".join(p) if p[0].startswith(" ") else _fill(" ".join(p), w) for p in paragraphs)


def _fill(text: str, w: int) -> str:
    """``text`` filled to ``w`` columns, its later lines indented: tyro joins a line that starts with a
    letter to the one before (``tyro._strings.remove_single_line_breaks``, tyro 1.0)."""
    return textwrap.fill(text, w, subsequent_indent="  ")


def _value(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
