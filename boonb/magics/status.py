"""``%boonb``: status, and ``%boonb config KEY=VALUE`` to change a setting."""

from __future__ import annotations

import shlex
import sys

from IPython.core.magic import Magics, line_magic, magics_class

from boonb import __version__, config
from boonb.runtime import get_runtime
from boonb.store import StoreError

USAGE = "usage: %boonb  |  %boonb config [KEY=VALUE ...]"


def _setting_name(key: str) -> str:
    """Accept a field name (db_path) or its environment variable (BOONB_DB_PATH)."""
    for field, info in config.Settings.model_fields.items():
        extra = info.json_schema_extra
        if key.lower() == field or (isinstance(extra, dict) and key.upper() == extra.get("env")):
            return field
    return key


def parse_assignments(words: list[str]) -> dict[str, str]:
    changes: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise config.ConfigError(f"expected KEY=VALUE, got {word!r}")
        changes[_setting_name(key)] = value
    return changes


def status_text() -> str:
    runtime = get_runtime()
    settings = runtime.settings
    lines = [
        f"boonb {__version__}",
        f"database   {settings.database}",
        f"session    {runtime.session_id}",
        f"provider   {runtime.provider().describe()}",
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


def settings_text() -> str:
    shown = config.get_settings().public_dict()
    width = max(map(len, shown))
    return "\n".join(f"{name:<{width}}  {value}" for name, value in shown.items())


@magics_class
class BoonbMagics(Magics):
    @line_magic
    def boonb(self, line: str) -> None:
        """Show boonb's status; ``%boonb config KEY=VALUE`` changes a setting."""
        words = shlex.split(line)
        if not words:
            print(status_text())
            return
        if words[0] != "config":
            print(USAGE, file=sys.stderr)
            return
        try:
            if len(words) > 1:
                config.update(**parse_assignments(words[1:]))
        except config.ConfigError as exc:
            print(f"boonb: {exc}", file=sys.stderr)
            return
        print(settings_text())
