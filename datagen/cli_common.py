"""What the project's command lines share, in the lowest package that has one (``operators``
has no command line): ``python -m datagen``, ``python -m model`` (and ``model zoo``) and
``python -m benchmarks.prepare`` format their help with :class:`HelpFormatter`. It is here,
not in ``datagen.cli``, so that another package's command line does not import datagen's."""
from __future__ import annotations

import argparse

__all__ = ["HelpFormatter", "int_at_least"]


def int_at_least(low: int, what: str):
    """An argparse type: an integer >= ``low``, else an error saying it must be ``what``."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be {what}, got {v}")
        return v

    return parse


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows "(default: X)" only where a default means something: not on required or positional
    arguments, flags, or options whose absence their help describes (default None). Shared by
    every command line of the project."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("%(default)" in text or action.default in (None, False, argparse.SUPPRESS)
                or action.required or not action.option_strings):
            return text
        return text + " (default: %(default)s)"
