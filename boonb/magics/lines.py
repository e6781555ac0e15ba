"""Reading a magic's line the way a shell would: quotes group words and are removed.

IPython's own ``parse_argstring`` splits without removing quotes, so ``--model ''``
arrived as the two characters ``''``. Every magic reads its options through here.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError


def split_line(line: str) -> list[str]:
    """The line's words, shell-style; a clear error for an unclosed quote."""
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot read the options ({exc}); check the quotes") from None


def parse_options(magic: Callable[..., Any], line: str) -> argparse.Namespace:
    """Parse ``line`` with the parser ``@magic_arguments`` gave ``magic``.

    Raises IPython's ``UsageError`` (shown without a traceback) for bad options, and for
    an option given as an empty string, which is never what was meant.
    """
    parser = magic.parser  # type: ignore[attr-defined]
    options = parser.parse_args(split_line(line))
    for action in parser._actions:
        value = getattr(options, action.dest, None)
        if isinstance(value, str) and not value.strip() and action.option_strings:
            raise UsageError(
                f"{action.option_strings[-1]} is empty; give a value or leave the option out"
            )
    return options
