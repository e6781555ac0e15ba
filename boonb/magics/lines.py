"""Magic lines parsed into pydantic models, one model per subcommand.

A model's fields are the line's words: a field marked ``Positional`` takes the next bare
word, any other field is an option ``--field-name`` (a ``bool`` one is a flag). Each
model writes its own usage line from those fields, so ``%magic?`` (the magic's
docstring, see ``help_text``) and the error for a bad line say the same thing.

Words are split the way a shell would: quotes group words and are removed (IPython's own
``parse_argstring`` keeps them, so ``--model ''`` arrived as the two characters ``''``).
An option that takes JSON (``--args``) also takes an unquoted object with spaces, as
people type it: ``--args {"question": "what is prompt caching"}``.

A bad line raises IPython's own ``UsageError`` (not a subclass: IPython shows only that
exact class as ``UsageError: <what is wrong>`` without a traceback), and its message ends
with the usage line.
"""

from __future__ import annotations

import io
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from IPython.core.error import UsageError
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo


class _BadWords(Exception):
    """A line that cannot be read; the parser adds the usage line and raises UsageError."""


JSON_OPTIONS = frozenset({"--args"})
"""Options whose value may be an unquoted JSON object or list, spaces and all."""


@dataclass(frozen=True)
class Positional:
    """Marks a field as a bare word; ``many`` takes every bare word left."""

    metavar: str
    help: str = ""
    many: bool = False


@dataclass(frozen=True)
class Option:
    """Describes an option ``--name VALUE`` (or a flag, for a ``bool`` field)."""

    help: str
    metavar: str = ""
    repeat: bool = False
    """May be given more than once; the field gets the list of values, in order."""


class MagicLine(BaseModel):
    """Base of the parsed lines: ``parse`` reads words into the model, ``usage`` describes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: ClassVar[str]
    """How the line starts, e.g. ``%workflow run`` (the magic and its subcommand)."""

    @classmethod
    def parse(cls, words: str | Sequence[str]) -> Self:
        """The model read from ``words`` (a line, or the words after the subcommand).

        Raises ``UsageError`` with what is wrong and the usage line.
        """
        try:
            values = _read_words(cls, _split(words) if isinstance(words, str) else words)
            return cls.model_validate(values)
        except ValidationError as exc:
            raise UsageError(f"{_first_problem(cls, exc)}\n{cls.usage()}") from None
        except _BadWords as exc:
            raise UsageError(f"{exc}\n{cls.usage()}") from None

    @classmethod
    def usage(cls) -> str:
        """One line: ``usage: %workflow run NAME [--args JSON] [--no-wait]``."""
        parts = [cls.command]
        for name, info in cls.model_fields.items():
            parts.append(_synopsis(name, info))
        return "usage: " + " ".join(parts)

    @classmethod
    def option_help(cls) -> list[str]:
        """One line per word or option that has a description."""
        lines = []
        for name, info in cls.model_fields.items():
            described = _marker(info)
            if described is not None and described.help:
                lines.append(f"  {_display(name, info):<16} {described.help}")
        return lines


def help_text(summary: str, *lines: type[MagicLine]) -> str:
    """A magic's docstring: what it does, then each subcommand's usage and options."""
    parts = [summary, ""]
    for line in lines:
        parts.append(line.usage())
        parts.extend(line.option_help())
    return "\n".join(parts)


def usage_of(lines: Sequence[type[MagicLine]]) -> str:
    """The usage lines of a magic's subcommands, for a line that names none of them."""
    return "\n".join(line.usage() for line in lines)


def parse_subcommand(
    line: str, commands: Mapping[str, type[MagicLine]], *, others: Sequence[type[MagicLine]] = ()
) -> MagicLine:
    """The line's first word picks the model, which reads the rest of the words.

    ``others`` are the magic's forms without a subcommand (``%%agent``), listed in the
    usage of a line that names no subcommand.
    """
    usage = usage_of([*others, *commands.values()])
    try:
        words = _split(line)
    except _BadWords as exc:
        raise UsageError(f"{exc}\n{usage}") from None
    if not words or words[0] not in commands:
        given = f"unknown subcommand {words[0]!r}" if words else "no subcommand given"
        raise UsageError(f"{given}\n{usage}")
    return commands[words[0]].parse(words[1:])


def split_line(line: str) -> list[str]:
    """The line's words, shell-style; an unquoted JSON object after ``--args`` stays whole.

    Raises ``UsageError`` for an unclosed quote or an ``--args`` that is not JSON.
    """
    try:
        return _split(line)
    except _BadWords as exc:
        raise UsageError(str(exc)) from None


def _split(line: str) -> list[str]:
    stream = io.StringIO(line)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[str] = []
    try:
        while True:
            before = stream.tell()
            word = lexer.get_token()
            if word is None:
                return words
            option, eq, _ = word.partition("=")
            if option in JSON_OPTIONS:
                # Where the value starts in the line as typed: after "--args " (the lexer
                # stopped after the one space that ended the word) or after "--args=".
                at = stream.tell() if not eq else _after_equals(line, before, option)
                raw = _raw_json(line, at, stream, option=option) if at is not None else None
                if raw is not None:
                    word = f"{option}={raw}" if eq else word
                words.append(word)
                if raw is not None and not eq:
                    words.append(raw)
                continue
            words.append(word)
    except ValueError as exc:
        raise _BadWords(f"cannot read the options ({exc}); check the quotes") from None


def _after_equals(line: str, before: int, option: str) -> int | None:
    """Where the value of ``--args=VALUE`` starts, when the option was typed unquoted."""
    typed = line[before:]
    at = before + len(typed) - len(typed.lstrip()) + len(option) + 1
    return at if line.startswith(f"{option}=", at - len(option) - 1) else None


def _raw_json(line: str, start: int, stream: io.StringIO, *, option: str) -> str | None:
    """An unquoted JSON value starting at ``start``, taken from the line as is.

    Anything else (a quoted value, a word) is left to the lexer. After a JSON value the
    lexer goes on reading right after it.
    """
    rest = line[start:]
    value = rest.lstrip()
    if not value.startswith(("{", "[")):
        return None
    try:
        _, end = json.JSONDecoder().raw_decode(value)
    except json.JSONDecodeError as exc:
        raise _BadWords(
            f"{option} is not valid JSON ({exc.msg} at character {exc.pos + 1}): {value!r}; "
            f'write a JSON object, e.g. {option} {{"topic": "duckdb"}}'
        ) from None
    stream.seek(start + len(rest) - len(value) + end)
    return value[:end]


def _read_words(model: type[MagicLine], words: Sequence[str]) -> dict[str, Any]:
    fields = model.model_fields
    positional = [name for name, info in fields.items() if isinstance(_marker(info), Positional)]
    options = {
        "--" + name.replace("_", "-"): name
        for name, info in fields.items()
        if not isinstance(_marker(info), Positional)
    }
    values: dict[str, Any] = {}
    words = list(words)
    while words:
        word = words.pop(0)
        if word.startswith("--"):
            flag, eq, inline = word.partition("=")
            name = options.get(flag)
            if name is None:
                raise _BadWords(f"unknown option {flag}")
            marker = _marker(fields[name])
            repeat = isinstance(marker, Option) and marker.repeat
            if name in values and not repeat:
                raise _BadWords(f"{flag} is given twice")
            if fields[name].annotation is bool:
                if eq:
                    raise _BadWords(f"{flag} is a flag and takes no value")
                values[name] = True
                continue
            if not eq:
                if not words or words[0].startswith("--"):
                    raise _BadWords(f"{flag} needs a value ({_metavar(name, fields[name])})")
                inline = words.pop(0)
            if not inline.strip():
                raise _BadWords(f"{flag} is empty; give a value or leave the option out")
            if repeat:
                values.setdefault(name, []).append(inline)
            else:
                values[name] = inline
        elif positional:
            name = positional[0]
            marker = _marker(fields[name])
            if isinstance(marker, Positional) and marker.many:
                values.setdefault(name, []).append(word)
            else:
                values[name] = word
                positional.pop(0)
        else:
            raise _BadWords(f"unexpected word {word!r}")
    return values


def _marker(info: FieldInfo) -> Positional | Option | None:
    return next((m for m in info.metadata if isinstance(m, Positional | Option)), None)


def _display(name: str, info: FieldInfo) -> str:
    """How the line names a field: ``NAME`` for a word, ``--max-turns`` for an option."""
    marker = _marker(info)
    if isinstance(marker, Positional):
        return marker.metavar
    return "--" + name.replace("_", "-")


def _metavar(name: str, info: FieldInfo) -> str:
    marker = _marker(info)
    return marker.metavar if marker is not None and marker.metavar else name.upper()


def _synopsis(name: str, info: FieldInfo) -> str:
    marker = _marker(info)
    shown = _display(name, info)
    if isinstance(marker, Positional):
        shown = f"{shown} ..." if marker.many else shown
    elif info.annotation is not bool:
        shown = f"{shown} {_metavar(name, info)}"
        if isinstance(marker, Option) and marker.repeat:
            shown = f"{shown} ..."
    return shown if info.is_required() else f"[{shown}]"


def _first_problem(model: type[MagicLine], exc: ValidationError) -> str:
    """The first validation error as the line names it: ``--budget must be ...``."""
    error = exc.errors()[0]
    loc = error["loc"]
    info = model.model_fields.get(str(loc[0])) if loc else None
    where = _display(str(loc[0]), info) if info is not None else "the line"
    if error["type"] == "missing":
        return f"{where} is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "value_error":
        return message  # our own validators name the option themselves
    return f"{where}: {message[:1].lower()}{message[1:]}, got {error['input']!r}"
