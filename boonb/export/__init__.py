"""OpenTelemetry GenAI export of the project's traces (the optional ``boonb[otel]`` extra).

Live (:class:`LiveExport`, fed by the bus, off the agent's thread) and backfill
(:func:`backfill`, from the database) build the same spans from the same rows
(:mod:`boonb.export.spans`), with ids derived from boonb's (:mod:`boonb.export.ids`).
Importing this package imports nothing of OpenTelemetry: only :func:`open_sender` does,
so a kernel with export off never pays for it.
"""

from __future__ import annotations

from boonb.export.backfill import ExportSummary, backfill
from boonb.export.errors import (
    ExportError,
    ExportNotConfigured,
    ExportNotInstalled,
    InvalidExportScope,
    InvalidHeaders,
    UnsupportedProtocol,
)
from boonb.export.live import EXPORTED_FRAME_TYPES, LiveExport, SpanSender
from boonb.export.target import ExportTarget, export_off_reason, export_target


def open_sender(target: ExportTarget) -> SpanSender:
    """An OTLP/HTTP sender to ``target``; raises :class:`ExportNotInstalled` without the extra."""
    from boonb.export.sdk import OtlpSender  # the one import of OpenTelemetry

    return OtlpSender(target)


__all__ = [
    "EXPORTED_FRAME_TYPES",
    "ExportError",
    "ExportNotConfigured",
    "ExportNotInstalled",
    "ExportSummary",
    "ExportTarget",
    "InvalidExportScope",
    "InvalidHeaders",
    "LiveExport",
    "SpanSender",
    "UnsupportedProtocol",
    "backfill",
    "export_off_reason",
    "export_target",
    "open_sender",
]
