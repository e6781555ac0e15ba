"""``%boonb``: status, and ``%boonb config KEY=VALUE`` to change a setting."""

from __future__ import annotations

from typing import Annotated, ClassVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from pydantic import BeforeValidator

from boonb import __version__, config
from boonb.errors import BoonbError
from boonb.export import export_off_reason
from boonb.magics.lines import (
    MagicLine,
    Positional,
    help_text,
    split_line,
    usage_of,
)
from boonb.magics.report import reports_errors
from boonb.runtime import Runtime, get_runtime
from boonb.store import StoreError


def _setting_name(key: str) -> str:
    """Accept a field name (db_path) or its environment variable (BOONB_DB_PATH)."""
    for field, info in config.Settings.model_fields.items():
        extra = info.json_schema_extra
        if key.lower() == field or (isinstance(extra, dict) and key.upper() == extra.get("env")):
            return field
    return key


def parse_assignments(value: object) -> object:
    """``KEY=VALUE`` words as the settings to change, by field name."""
    if not isinstance(value, list):
        return value
    changes: dict[str, str] = {}
    for word in value:
        key, sep, setting = str(word).partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {word!r}")
        changes[_setting_name(key)] = setting
    return changes


class BoonbStatus(MagicLine):
    """``%boonb``: the version, database, session and provider of this kernel."""

    command: ClassVar[str] = "%boonb"


class BoonbConfig(MagicLine):
    """``%boonb config [KEY=VALUE ...]``: show the settings, after changing the ones given."""

    command: ClassVar[str] = "%boonb config"

    changes: Annotated[
        dict[str, str],
        BeforeValidator(parse_assignments),
        Positional(
            "KEY=VALUE",
            "a setting by name (db_path) or variable (BOONB_DB_PATH), and its new value",
            many=True,
        ),
    ] = {}


BOONB_HELP = help_text(
    "Show boonb's status, or its settings after changing some.", BoonbStatus, BoonbConfig
)


def status_text() -> str:
    runtime = get_runtime()
    settings = runtime.settings
    lines = [
        f"boonb {__version__}",
        f"database   {settings.database}",
        f"session    {runtime.session_id}",
        f"provider   {runtime.provider().describe()}",
        f"export     {export_text(runtime)}",
        f"executor   {executor_text(runtime)}",
    ]
    try:
        store = runtime.store
        store.writer.flush()
        counts = store.row_counts()
    except StoreError as exc:
        lines.append(f"store      unavailable: {exc}")
    else:
        lines.append("rows       " + ", ".join(f"{t} {n}" for t, n in counts.items()))
    return "\n".join(lines)


def export_text(runtime: Runtime) -> str:
    """Where traces are exported (the endpoint, never the headers' values), or why not.

    Why not: the error that stopped export starting, the variable that switches it off,
    or nothing set (then how to start).
    """
    export = runtime.export
    if export is not None:
        return export.describe()
    if runtime.export_error is not None:
        return f"off: {runtime.export_error}"
    reason = export_off_reason(runtime.settings)
    if reason is not None:
        return f"off ({reason})"
    return (
        "off (set OTEL_EXPORTER_OTLP_ENDPOINT, or %boonb config otel_endpoint=URL, to send "
        "traces to Phoenix, Langfuse or any OTLP endpoint)"
    )


WORKERS_SHOWN = 8
"""Workers ``%boonb`` names; a bigger cluster's others are counted."""


def executor_text(runtime: Runtime) -> str:
    """Where background and workflow agents run: this kernel, or a cluster and its workers."""
    try:
        executor = runtime.executor
        if executor.name == "dask":
            from boonb.executors.dask import DaskExecutor  # only a Dask kernel loads it

            if isinstance(executor, DaskExecutor):
                executor.wait_ready()  # %boonb right after `executor=dask` shows the workers
    except BoonbError as exc:
        return f"unavailable: {exc}"
    status = executor.describe()
    if status.name == "local":
        return "local (agents run in this kernel)"
    if not status.workers:
        return f"dask at {status.address}, unavailable: {status.problem or 'no workers'}"
    count = len(status.workers)
    text = f"dask ({count} worker{'s' if count != 1 else ''} at {status.address})"
    text += f", {status.running} agents running" if status.running else ""
    shown = ", ".join(status.workers[:WORKERS_SHOWN])
    more = count - WORKERS_SHOWN
    text += f"\n{'workers':<10} {shown}" + (f" and {more} more" if more > 0 else "")
    # Some workers left out (another boonb, unreachable) while the others take runs.
    return text + (f"\n{'problem':<10} {status.problem}" if status.problem else "")


def settings_text() -> str:
    shown = config.get_settings().public_dict()
    width = max(map(len, shown))
    return "\n".join(f"{name:<{width}}  {value}" for name, value in shown.items())


@magics_class
class BoonbMagics(Magics):
    """The ``%boonb`` magic: status and settings."""

    @line_magic
    @reports_errors
    def boonb(self, line: str) -> None:
        words = split_line(line)
        if not words:
            print(status_text())
        elif words[0] == "config":
            options = BoonbConfig.parse(words[1:])
            if options.changes:
                get_runtime()  # exists first, so the change reaches it (its export)
                config.update(**options.changes)
            print(settings_text())
        else:
            usage = usage_of([BoonbStatus, BoonbConfig])
            raise UsageError(f"unknown subcommand {words[0]!r}\n{usage}")

    boonb.__doc__ = BOONB_HELP
