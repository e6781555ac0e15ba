"""Where traces are exported to, read from the settings (no OpenTelemetry import here).

Export is on when any of the standard variables is set: ``OTEL_EXPORTER_OTLP_ENDPOINT``
(a base URL, ``/v1/traces`` appended), ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (the full
URL, used as given), or headers alone (``OTEL_EXPORTER_OTLP_HEADERS`` or
``OTEL_EXPORTER_OTLP_TRACES_HEADERS``; then the default endpoint,
``http://localhost:4318``); ``%boonb config otel_endpoint=...`` sets the first. As in the
OpenTelemetry SDK, the traces headers, when set, are used instead of the general ones
(not merged with them). ``OTEL_SDK_DISABLED=true`` or an ``OTEL_TRACES_EXPORTER`` without
``otlp`` (e.g. ``none``) keeps export off; an OTLP protocol of ``grpc`` is refused.

The settings are the one source of truth: the sender sends these headers and no others,
even those the SDK would read from the environment itself (:mod:`boonb.export.sdk`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

from pydantic import SecretStr

from boonb.config import Settings, url_password, without_password
from boonb.export.errors import InvalidHeaders, UnsupportedProtocol

DEFAULT_ENDPOINT = "http://localhost:4318"
TRACES_PATH = "/v1/traces"
MIN_SECRET_CHARS = 8
"""Shorter configured values are not scrubbed from exports: a 3-character 'key' would
blank out every word it happens to be part of."""


@dataclass(frozen=True, slots=True)
class ExportTarget:
    """An OTLP/HTTP traces endpoint and how to export to it.

    Its repr names the endpoint without its password and shows neither the headers'
    values nor the secrets: a target can reach a notebook, a traceback or a test diff.
    """

    endpoint: str = field(repr=False)
    """The full traces URL (``.../v1/traces``), as configured (a password included)."""
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    capture_content: bool = False
    """Whether message content and tool arguments and results are exported."""
    timeout_s: float = 10.0
    max_queue: int = 10_000
    max_attribute_chars: int = 100_000
    """Longest text one attribute carries (``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``)."""
    secrets: frozenset[str] = field(default=frozenset(), repr=False)
    """Values that must never leave in a span: API keys, header values, URL passwords."""
    shown: str = field(default="", compare=False)
    """:meth:`describe`, for the repr."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "shown", self.describe())

    def describe(self) -> str:
        """Where traces go, for ``%boonb``: the endpoint and header names, never their values."""
        shown = without_password(self.endpoint)
        if self.headers:
            shown += " (headers: " + ", ".join(name for name, _ in self.headers) + ")"
        if self.capture_content:
            shown += ", with message content"
        return shown


def export_off_reason(settings: Settings) -> str | None:
    """Why the standard variables keep export off although an endpoint is set; else None."""
    if settings.otel_sdk_disabled:
        return "OTEL_SDK_DISABLED=true"
    exporters = {name.strip() for name in settings.otel_traces_exporter.split(",")}
    if "otlp" not in exporters:
        return f"OTEL_TRACES_EXPORTER={settings.otel_traces_exporter}"
    return None


def export_target(settings: Settings) -> ExportTarget | None:
    """The target the settings give, or None when export is off (the default)."""
    headers_text = _secret_text(settings.otel_traces_headers) or _secret_text(settings.otel_headers)
    configured = settings.otel_traces_endpoint or settings.otel_endpoint or headers_text
    if not configured or export_off_reason(settings) is not None:
        return None
    protocol = settings.otel_traces_protocol or settings.otel_protocol
    if protocol == "grpc":
        raise UnsupportedProtocol(
            "boonb exports traces over OTLP/HTTP only, and OTEL_EXPORTER_OTLP_PROTOCOL "
            "(or ..._TRACES_PROTOCOL) asks for grpc; set it to http/protobuf and point the "
            "endpoint at the collector's HTTP port (4318, not 4317)"
        )
    if settings.otel_traces_endpoint:
        endpoint = settings.otel_traces_endpoint
    else:
        endpoint = (settings.otel_endpoint or DEFAULT_ENDPOINT).rstrip("/") + TRACES_PATH
    headers = parse_headers(headers_text)
    return ExportTarget(
        endpoint=endpoint,
        headers=headers,
        capture_content=settings.otel_capture_content,
        timeout_s=settings.otel_timeout_s,
        max_queue=settings.otel_max_queue,
        max_attribute_chars=settings.otel_attribute_value_length_limit,
        secrets=_secrets(settings),
    )


def _secrets(settings: Settings) -> frozenset[str]:
    """Every secret the settings hold, to scrub from spans.

    Each SecretStr (API keys, header lists), each header's value (of the general and of
    the traces headers, whichever is used), each URL's password.
    """
    found: set[str] = set()
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
            found.add(text)
            if name in ("otel_headers", "otel_traces_headers"):
                for _, header in _parse_leniently(text):
                    found.add(header)
                    found.update(header.split())  # "Basic <token>": the token alone too
        elif isinstance(value, str):
            found.add(url_password(value) or "")
    return frozenset(s for s in found if len(s) >= MIN_SECRET_CHARS)


def _secret_text(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def parse_headers(text: str) -> tuple[tuple[str, str], ...]:
    """``key=value,key2=value2`` (values URL-encoded, as the OTLP exporter spec says).

    A malformed entry is named by its key only: the values are secrets.
    """
    headers: list[tuple[str, str]] = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = entry.partition("=")
        if not sep or not name.strip():
            raise InvalidHeaders(
                "OTEL_EXPORTER_OTLP_HEADERS (or ..._TRACES_HEADERS) must be key=value pairs "
                "separated by commas (e.g. Authorization=Basic%20...); entry "
                f"{len(headers) + 1} is not"
            )
        headers.append((unquote(name.strip()).lower(), unquote(value.strip())))
    return tuple(headers)


def _parse_leniently(text: str) -> list[tuple[str, str]]:
    """The well-formed entries only (for scrubbing: an unused, malformed list must not raise)."""
    entries = (part.strip().partition("=") for part in text.split(","))
    return [(unquote(n.strip()), unquote(v.strip())) for n, sep, v in entries if sep]
