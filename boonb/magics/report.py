"""How a magic shows a failure: one ``boonb:`` line, never a traceback, for a BoonbError."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from boonb.errors import BoonbError

F = TypeVar("F", bound=Callable[..., Any])


def print_error(exc: BaseException, *, newline: bool = False) -> None:
    """Print ``boonb: <message>`` to stderr; the message already says what to do next."""
    prefix = "\n" if newline else ""
    print(f"{prefix}boonb: {exc}", file=sys.stderr)


def reports_errors(magic: F) -> F:
    """Wrap a magic so a ``BoonbError`` is printed as its message and the magic returns None.

    A bad line (IPython's ``UsageError``) is left to IPython, which shows it as
    ``UsageError: ...`` without a traceback. Anything else is a bug and keeps its
    traceback.
    """

    @functools.wraps(magic)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return magic(*args, **kwargs)
        except BoonbError as exc:
            print_error(exc)
            return None

    return wrapper  # type: ignore[return-value]
