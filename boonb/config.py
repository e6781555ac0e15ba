"""Settings from the environment, with defaults, changeable at run time.

Each setting has one environment variable. `%boonb config KEY=VALUE` and
:func:`update` change the live settings; the environment is read once, when the
settings are first needed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from boonb.errors import ConfigError

ProviderName = Literal["auto", "sim", "deepseek", "openai", "local"]
OtlpProtocol = Literal["http/protobuf", "http/json", "grpc"]
ExecutorName = Literal["local", "dask"]
# The schemes a Dask scheduler listens on (distributed's comm backends).
_DASK_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")
# OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT's modes (besides true/false): boonb
# records content on spans only, so any mode that includes spans switches it on.
_CAPTURE_MODES = {
    "span_only": True, "span_and_event": True, "event_only": False, "no_content": False,
}  # fmt: skip


class Settings(BaseModel):
    """boonb's settings. Each field's `env` is the variable it is read from."""

    model_config = ConfigDict(validate_assignment=True, extra="forbid", frozen=False)

    project: Path = Field(
        default_factory=Path.cwd,
        description="Project root: files tools may touch, and where .boonb/ lives.",
        json_schema_extra={"env": "BOONB_PROJECT"},
    )
    db_path: Path | None = Field(
        default=None,
        description="DuckDB file; defaults to <project>/.boonb/boonb.duckdb.",
        json_schema_extra={"env": "BOONB_DB_PATH"},
    )
    provider: ProviderName = Field(
        default="auto",
        description="Model provider; 'auto': the one whose API key is set, else the simulator.",
        json_schema_extra={"env": "BOONB_PROVIDER"},
    )
    model: str | None = Field(
        default=None,
        description="Model name; defaults to the provider's default model.",
        json_schema_extra={"env": "BOONB_MODEL"},
    )
    base_url: str | None = Field(
        default=None,
        description="Override the provider's base URL (e.g. a local vLLM server).",
        json_schema_extra={"env": "BOONB_BASE_URL"},
    )
    deepseek_api_key: SecretStr | None = Field(
        default=None, json_schema_extra={"env": "DEEPSEEK_API_KEY"}
    )
    openai_api_key: SecretStr | None = Field(
        default=None, json_schema_extra={"env": "OPENAI_API_KEY"}
    )
    flush_interval_ms: int = Field(
        default=200,
        ge=10,
        le=60_000,
        description="Longest time a recorded row waits in memory before it is written.",
        json_schema_extra={"env": "BOONB_FLUSH_INTERVAL_MS"},
    )
    workflow_max_concurrent: int = Field(
        default=3,
        ge=1,
        le=64,
        description="Workflow runs at once; more wait as pending, in order.",
        json_schema_extra={"env": "WORKFLOW_MAX_CONCURRENT"},
    )
    workflow_default_budget: int = Field(
        default=100_000,
        ge=1,
        description="Token budget of a workflow run that names none.",
        json_schema_extra={"env": "WORKFLOW_DEFAULT_BUDGET"},
    )
    workflow_cache_size: int = Field(
        default=100,
        ge=0,
        description="Agent results kept in memory by the workflow cache (the table keeps all).",
        json_schema_extra={"env": "WORKFLOW_CACHE_SIZE"},
    )
    workflow_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Default time limit of a workflow run.",
        json_schema_extra={"env": "BOONB_WORKFLOW_TIMEOUT_S"},
    )
    background_max_concurrent: int = Field(
        default=2,
        ge=1,
        le=1_000,
        description="Background subagents a kernel runs at once; more wait as pending, in order.",
        json_schema_extra={"env": "BACKGROUND_MAX_CONCURRENT"},
    )
    background_poll_interval_s: float = Field(
        default=1.0,
        ge=0.05,
        le=3_600,
        description=(
            "How often a kernel with background tasks reads the table for what other processes "
            "asked of them (a cancel, a retry)."
        ),
        json_schema_extra={"env": "BACKGROUND_POLL_INTERVAL_S"},
    )
    tool_output_max_chars: int = Field(
        default=200_000,
        ge=1_000,
        description=(
            "Characters of a tool's output the model reads and the store keeps; the rest is "
            "cut, with a note giving the full size."
        ),
        json_schema_extra={"env": "BOONB_TOOL_OUTPUT_MAX_CHARS"},
    )
    max_pending_rows: int = Field(
        default=100_000,
        ge=1_000,
        description=(
            "Most unwritten rows kept in memory while the disk refuses them (full, read-only); "
            "past it the oldest traces are dropped, and the user is told how many."
        ),
        json_schema_extra={"env": "BOONB_MAX_PENDING_ROWS"},
    )
    max_attachment_size_mb: float = Field(
        default=20,
        gt=0,
        le=1_000,
        description="Largest image a prompt may carry, in MB; larger ones are refused.",
        json_schema_extra={"env": "MAX_ATTACHMENT_SIZE_MB"},
    )
    upload_dir: Path | None = Field(
        default=None,
        description=(
            "Where uploads are staged before they are stored; defaults to a boonb-uploads "
            "folder in the system temp dir. Staged files are removed after use."
        ),
        json_schema_extra={"env": "UPLOAD_DIR"},
    )
    vision: bool | None = Field(
        default=None,
        description=(
            "Whether the model can take images; unset: the model's profile decides. Set it "
            "for a model boonb does not know (e.g. a local vision model)."
        ),
        json_schema_extra={"env": "BOONB_VISION"},
    )
    lock_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="How long to keep retrying when another process holds the database.",
        json_schema_extra={"env": "BOONB_LOCK_TIMEOUT_S"},
    )

    executor: ExecutorName = Field(
        default="local",
        description=(
            "Where background and workflow agents run: 'local' (this kernel's engine) or "
            "'dask' (the workers of the Dask cluster at dask_address). Needs boonb[dask]."
        ),
        json_schema_extra={"env": "BOONB_EXECUTOR"},
    )
    dask_address: str | None = Field(
        default=None,
        description=(
            "The Dask scheduler agents are sent to with executor=dask, e.g. "
            "tcp://10.0.0.5:8786 (tls:// beyond this machine); 'off' unsets it."
        ),
        json_schema_extra={"env": "BOONB_DASK_ADDRESS"},
    )
    dask_agents_per_worker: int = Field(
        default=256,
        ge=1,
        le=100_000,
        description="Most agents one Dask worker runs at once; more wait for a free worker.",
        json_schema_extra={"env": "BOONB_DASK_AGENTS_PER_WORKER"},
    )
    dask_heartbeat_s: float = Field(
        default=5.0,
        ge=0.1,
        le=600,
        description=(
            "How often the kernel checks that a Dask worker running its agents answers; "
            "two missed checks fail that worker's agents."
        ),
        json_schema_extra={"env": "BOONB_DASK_HEARTBEAT_S"},
    )

    otel_endpoint: str | None = Field(
        default=None,
        description=(
            "OTLP/HTTP endpoint (base URL) boonb's traces are exported to as OpenTelemetry "
            "GenAI spans, /v1/traces added; 'off' switches export off. Needs boonb[otel]."
        ),
        json_schema_extra={"env": "OTEL_EXPORTER_OTLP_ENDPOINT"},
    )
    otel_traces_endpoint: str | None = Field(
        default=None,
        description="Full OTLP/HTTP traces URL; wins over otel_endpoint ('off' unsets it).",
        json_schema_extra={"env": "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
    )
    otel_headers: SecretStr | None = Field(
        default=None,
        description=(
            "Headers sent with each export, as key=value,key2=value2 (e.g. an API key of the "
            "tracing backend); never shown or exported."
        ),
        json_schema_extra={"env": "OTEL_EXPORTER_OTLP_HEADERS"},
    )
    otel_traces_headers: SecretStr | None = Field(
        default=None,
        description=(
            "Headers of the traces endpoint only; when set, used instead of otel_headers "
            "(as the OpenTelemetry SDK does); never shown or exported."
        ),
        json_schema_extra={"env": "OTEL_EXPORTER_OTLP_TRACES_HEADERS"},
    )
    otel_protocol: OtlpProtocol | None = Field(
        default=None,
        description="OTLP protocol; boonb sends http/protobuf, and refuses grpc with a hint.",
        json_schema_extra={"env": "OTEL_EXPORTER_OTLP_PROTOCOL"},
    )
    otel_traces_protocol: OtlpProtocol | None = Field(
        default=None,
        description="OTLP protocol of the traces endpoint; wins over otel_protocol.",
        json_schema_extra={"env": "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
    )
    otel_sdk_disabled: bool = Field(
        default=False,
        description="OpenTelemetry's own off switch: true turns boonb's export off too.",
        json_schema_extra={"env": "OTEL_SDK_DISABLED"},
    )
    otel_traces_exporter: str = Field(
        default="otlp",
        description="Trace exporters (comma-separated); boonb exports only if otlp is one.",
        json_schema_extra={"env": "OTEL_TRACES_EXPORTER"},
    )
    otel_attribute_value_length_limit: int = Field(
        default=100_000,
        ge=1,
        description=(
            "Longest text a span attribute carries (message content, tool results); longer "
            "ones are cut, so one call cannot make a batch the endpoint refuses."
        ),
        json_schema_extra={"env": "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"},
    )
    otel_capture_content: bool = Field(
        default=False,
        description=(
            "Export message content and tool arguments and results too (off: only names, "
            "ids, timings and token counts leave the kernel)."
        ),
        json_schema_extra={"env": "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"},
    )
    otel_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Longest time one export request (with its retries) may take.",
        json_schema_extra={"env": "BOONB_OTEL_TIMEOUT_S"},
    )
    otel_max_queue: int = Field(
        default=10_000,
        ge=100,
        le=10_000_000,
        description=(
            "Most finished calls waiting to be exported; past it (a slow or dead endpoint) "
            "new ones are dropped and counted, and agents never wait."
        ),
        json_schema_extra={"env": "BOONB_OTEL_MAX_QUEUE"},
    )

    @field_validator("otel_endpoint", "otel_traces_endpoint", mode="before")
    @classmethod
    def _endpoint_url(cls, value: object) -> object:
        """'off' (or 'none') unsets an endpoint; anything else must be an http(s) URL."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.lower() in ("off", "none"):
            return None
        if not text.lower().startswith(("http://", "https://")):
            raise ValueError(
                f"expected an http:// or https:// URL such as http://localhost:4318, got {text!r}"
            )
        return text

    @field_validator("dask_address", mode="before")
    @classmethod
    def _scheduler_address(cls, value: object) -> object:
        """'off' (or 'none') unsets it; else a scheduler's address, not its dashboard's URL."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.lower() in ("off", "none"):
            return None
        scheme, sep, rest = text.partition("://")
        if not sep:  # distributed reads a bare host:port as tcp://host:port
            scheme, rest = "tcp", text
        if scheme.lower() not in _DASK_SCHEMES or not rest or rest.startswith(":"):
            raise ValueError(
                "expected a Dask scheduler address such as tcp://10.0.0.5:8786 "
                f"(schemes: {', '.join(_DASK_SCHEMES)}), got {text!r}; the dashboard's "
                "http:// URL is not the scheduler's address"
            )
        return text

    @field_validator("otel_headers", "otel_traces_headers", mode="before")
    @classmethod
    def _headers_off(cls, value: object) -> object:
        """'off' (or 'none') unsets the headers, as for the endpoints."""
        if isinstance(value, str) and value.strip().lower() in ("off", "none"):
            return None
        return value

    @field_validator(
        "otel_protocol", "otel_traces_protocol", "otel_traces_exporter", "executor", mode="before"
    )
    @classmethod
    def _lower(cls, value: object) -> object:
        """The OpenTelemetry variables' values (and the executor's) are case-insensitive."""
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("otel_capture_content", mode="before")
    @classmethod
    def _capture_mode(cls, value: object) -> object:
        """Newer instrumentations spell the variable's 'on' as a mode: SPAN_ONLY etc."""
        if isinstance(value, str) and value.strip().lower() in _CAPTURE_MODES:
            return _CAPTURE_MODES[value.strip().lower()]
        return value

    @property
    def database(self) -> Path:
        """The DuckDB file in use."""
        return self.db_path or self.project / ".boonb" / "boonb.duckdb"

    def public_dict(self) -> dict[str, Any]:
        """Settings for display: secrets reduced to whether they are set."""
        shown: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "set"
            elif isinstance(value, str):
                value = without_password(value)  # https://user:PASSWORD@host URLs
            shown[name] = value
        shown["database"] = self.database
        return shown


def without_password(text: str) -> str:
    """A URL with its password (if any) replaced by ``***``; any other text as is."""
    parts = urlsplit(text)
    if parts.password is None:
        return text
    host = parts.netloc.rpartition("@")[2]  # the host and port exactly as written
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def url_password(text: str | None) -> str | None:
    """The password of a ``https://user:PASSWORD@host`` URL, None if it has none."""
    return urlsplit(text).password if text else None


def _env_name(field: str) -> str:
    extra = Settings.model_fields[field].json_schema_extra
    assert isinstance(extra, dict)
    return str(extra["env"])


def from_environment(environ: dict[str, str] | None = None) -> Settings:
    """Build settings from environment variables (unset or empty ones keep the default)."""
    environ = dict(os.environ) if environ is None else environ
    values = {
        field: environ[_env_name(field)]
        for field in Settings.model_fields
        if environ.get(_env_name(field))
    }
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, by_env=True)) from None


_lock = threading.Lock()
_settings: Settings | None = None
_listeners: list[Callable[[], None]] = []


def on_change(listener: Callable[[], None]) -> Callable[[], None]:
    """Call ``listener`` after each :func:`update` (e.g. to retarget the trace export).

    Returns what unsubscribes it. A listener handles its own errors: the settings are
    already changed when it runs.
    """
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def get_settings() -> Settings:
    """The live settings, read from the environment on first use."""
    global _settings
    with _lock:
        if _settings is None:
            _settings = from_environment()
        return _settings


def update(**changes: Any) -> Settings:
    """Change settings at run time; all changes apply or none (validated first)."""
    global _settings
    current = get_settings()
    unknown = sorted(set(changes) - set(Settings.model_fields))
    if unknown:
        known = ", ".join(sorted(Settings.model_fields))
        raise ConfigError(f"unknown setting {', '.join(unknown)}; known settings: {known}")
    for name, value in changes.items():
        if isinstance(value, str) and not value.strip():
            raise ConfigError(f"{name} is empty; give a value: {name}=...")
    try:
        merged = Settings.model_validate({**current.model_dump(), **changes})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, by_env=False)) from None
    if "project" in changes and not merged.project.expanduser().is_dir():
        raise ConfigError(
            f"project {merged.project} is not a directory; create it first, or check the "
            "spelling (boonb does not create a project)"
        )
    with _lock:
        _settings = merged
    for listener in list(_listeners):
        listener()
    return merged


def reset(settings: Settings | None = None) -> None:
    """Replace the live settings (tests, or re-reading the environment with None)."""
    global _settings
    with _lock:
        _settings = settings


def _describe(exc: ValidationError, *, by_env: bool) -> str:
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        name = _env_name(field) if by_env and field in Settings.model_fields else field
        parts.append(f"{name}: {error['msg']}")
    return "invalid setting: " + "; ".join(parts)
