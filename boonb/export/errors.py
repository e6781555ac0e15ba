"""The errors a user can hit when exporting traces to OpenTelemetry."""

from __future__ import annotations

from boonb.errors import BoonbError


class ExportError(BoonbError):
    """Exporting traces to an OpenTelemetry endpoint cannot be done as asked."""


class ExportNotInstalled(ExportError):
    """Export is switched on but the OpenTelemetry packages are not installed."""


class ExportNotConfigured(ExportError):
    """A backfill was asked for with no endpoint to send it to."""


class InvalidExportScope(ExportError):
    """``export_otel`` was given something that is not a chat id, a run id or ``"all"``."""


class InvalidHeaders(ExportError):
    """``OTEL_EXPORTER_OTLP_HEADERS`` is not a list of ``key=value`` pairs."""


class UnsupportedProtocol(ExportError):
    """The OTLP protocol asked for is one boonb does not send (gRPC)."""


INSTALL_HINT = "install the extra: pip install 'boonb[otel]'"
