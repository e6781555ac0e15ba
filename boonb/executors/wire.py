"""What crosses between a remote agent and its kernel: items, batches, images and replies.

An agent on a Dask worker records what it does as **items**, each ``(run_id, seq, kind,
data)``: ``frame`` (a frame as the kernel's bus would carry it), ``chat`` and ``message``
(what the kernel's recorder turns into rows), ``snapshot`` (what its session saver writes)
and ``end`` (the run's last item). ``seq`` counts a run's items from 1, so the kernel
applies them in order whatever order they arrive in. Items travel in **batches**,
``{"v": WIRE_VERSION, "items": [[run_id, seq, kind, data], ...]}``, and every ``data`` is
JSON bytes: a batch is msgpack-safe (what ``Worker.log_event`` requires) and never pickle,
which would let anyone able to post an event on the cluster run code in the kernel.

The run's **reply** (what ``AgentHost.run`` returns) is a plain dict too; it carries the
run's ``last_seq``, as the reply may arrive before the items it follows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, get_args

from pydantic import SecretStr

from boonb.agent.loop import AgentResult, RunStats
from boonb.agent.provider import ProviderChoice
from boonb.attachments import (
    AttachmentError,
    AttachmentNotFound,
    AttachmentRef,
    AttachmentStore,
    AttachmentTooLarge,
    ImageTooManyPixels,
    UnreadableImage,
    UnsupportedAttachment,
)
from boonb.errors import (
    AgentError,
    BoonbError,
    ConfigError,
    ExecutorError,
    ProviderError,
    ToolError,
    WorkerLost,
)
from boonb.executors.spec import ProviderWire
from boonb.frames import Frame, frame_adapter
from boonb.providers import CapabilityError, Usage

WIRE_VERSION = 1
"""Bumped whenever an item's or a reply's meaning changes; both ends must agree."""

MAX_BATCH_BYTES = 512 * 1024
"""A batch is sent once its items reach this size; a larger item goes alone, never split."""

FLUSH_INTERVAL_S = 0.02
"""The longest an item waits in a batch, so live views lag a worker by no more."""

ItemKind = Literal["frame", "chat", "message", "snapshot", "end"]
ITEM_KINDS: frozenset[str] = frozenset(get_args(ItemKind))


class WireError(ExecutorError):
    """A batch or reply this kernel cannot read (another wire version, or malformed)."""


class Item(NamedTuple):
    """One thing a remote run did, in its run's order."""

    run_id: str
    seq: int
    kind: ItemKind
    data: bytes


# Payloads.


def frame_data(frame: Frame) -> bytes:
    return frame_adapter.dump_json(frame)


def frame_of(data: bytes) -> Frame:
    """The frame an item carries, validated as any frame from outside is."""
    return frame_adapter.validate_json(data)


def json_data(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def json_of(data: bytes) -> Any:
    return json.loads(data)


# Batches.


def batch(items: Iterable[Item]) -> dict[str, Any]:
    """The event that carries ``items``: msgpack-safe (str, int, bytes, lists, a dict)."""
    return {"v": WIRE_VERSION, "items": [[i.run_id, i.seq, i.kind, i.data] for i in items]}


def items_of(message: Any) -> list[Item]:
    """The items of a batch; raises :class:`WireError` for another version or a bad shape."""
    if not isinstance(message, Mapping):
        raise WireError(f"a batch is a dict, got {type(message).__name__}")
    version = message.get("v")
    if version != WIRE_VERSION:
        raise WireError(
            f"a batch of wire version {version!r} (this kernel reads {WIRE_VERSION}): the "
            "workers run another boonb; install the same version on the workers"
        )
    raw = message.get("items")
    if not isinstance(raw, list | tuple):
        raise WireError("a batch without a list of items")
    return [_item(entry) for entry in raw]


def _item(entry: Any) -> Item:
    if isinstance(entry, list | tuple) and len(entry) == 4:
        run_id, seq, kind, data = entry
        if (
            isinstance(run_id, str)
            and isinstance(seq, int)
            and seq >= 1
            and kind in ITEM_KINDS
            and isinstance(data, bytes)
        ):
            return Item(run_id, seq, kind, data)
    raise WireError(f"a malformed item: {str(entry)[:200]}")


def batch_size(item: Item) -> int:
    """What an item adds to a batch, near enough (its data dominates)."""
    return len(item.data) + len(item.run_id) + 16


class Batcher:
    """Gathers items into batches for ``send``: every 20 ms, at 512 KB, or when told.

    Lives on one event loop (a worker's); ``flush`` is called at a turn boundary and at
    the end of a run, so a turn's items go out together and a run's last items go out
    before its reply.
    """

    def __init__(
        self,
        send: Callable[[dict[str, Any]], None],
        *,
        max_bytes: int = MAX_BATCH_BYTES,
        interval: float = FLUSH_INTERVAL_S,
    ) -> None:
        self.send = send
        self.max_bytes = max_bytes
        self.interval = interval
        self._items: list[Item] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, item: Item) -> None:
        size = batch_size(item)
        if self._items and self._size + size > self.max_bytes:
            self.flush()
        self._items.append(item)
        self._size += size
        if self._size >= self.max_bytes:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._items:
            return
        items, self._items, self._size = self._items, [], 0
        self.send(batch(items))


# Images.


@dataclass(frozen=True, slots=True)
class ImageBlob:
    """The bytes of one image a run's prompt refers to, sent with the run."""

    sha256: str
    mime: str
    data: bytes


def image_blobs(refs: Sequence[AttachmentRef], store: AttachmentStore) -> list[ImageBlob]:
    """The bytes of ``refs`` from the kernel's attachment store.

    Blocking (it reads files): call it in a thread, not on the engine loop.
    """
    blobs: dict[str, ImageBlob] = {}
    for ref in refs:
        if ref.sha256 not in blobs:
            blobs[ref.sha256] = ImageBlob(ref.sha256, ref.mime, store.read(ref))
    return list(blobs.values())


# The provider.


def provider_wire(choice: ProviderChoice, *, tool_output_max_chars: int) -> ProviderWire:
    """What a remote agent needs of the kernel's provider; the key stays a secret."""
    return ProviderWire(
        name=choice.name,
        profile=choice.profile,
        model=choice.model,
        api_key=SecretStr(choice.api_key) if choice.api_key is not None else None,
        tool_output_max_chars=tool_output_max_chars,
    )


# Replies.

RunOutcome = Literal["done", "failed", "cancelled", "expired"]
"""How a remote run ended, as its reply says: ``cancelled`` when its kernel asked,
``expired`` when the worker stopped it because its kernel's lease ran out."""

# Errors a reply names, rebuilt in the kernel as the class a local run raises. Each takes
# its message alone; any other error is sent as the nearest of these it derives from.
_ERRORS: dict[str, type[BoonbError]] = {
    cls.__name__: cls
    for cls in (
        AgentError,
        AttachmentError,
        AttachmentNotFound,
        AttachmentTooLarge,
        ImageTooManyPixels,
        UnreadableImage,
        UnsupportedAttachment,
        CapabilityError,
        ProviderError,
        ToolError,
        ConfigError,
        ExecutorError,
        WorkerLost,
    )
}


def reply(
    run_id: str,
    last_seq: int,
    outcome: RunOutcome,
    *,
    result: AgentResult | None = None,
    error: BaseException | None = None,
) -> dict[str, Any]:
    """What ``AgentHost.run`` returns: plain data, read by :func:`result_of`."""
    return {
        "wire": WIRE_VERSION,
        "run_id": run_id,
        "last_seq": last_seq,
        "outcome": outcome,
        "result": _result_data(result) if result is not None else None,
        "error": _error_data(error) if error is not None else None,
    }


def result_of(answer: Mapping[str, Any]) -> AgentResult:
    """The run's ``AgentResult``, or what a local run would have raised.

    ``failed`` raises the error the agent raised (``AgentError``, an ``AttachmentError``,
    ...; a crash on the worker as ``ExecutorError``); ``cancelled`` (the kernel asked)
    raises ``asyncio.CancelledError``; ``expired`` (the worker stopped hearing from this
    kernel) raises ``WorkerLost``, as no cancel was asked here; a reply of another wire
    version raises ``ExecutorError``.
    """
    if answer.get("wire") != WIRE_VERSION:
        raise ExecutorError(
            f"the Dask worker answered in wire version {answer.get('wire')!r}, this kernel "
            f"reads {WIRE_VERSION}: install the same boonb on the workers as in the kernel"
        )
    match answer["outcome"]:
        case "done":
            return _result(answer["result"])
        case "cancelled":
            raise asyncio.CancelledError()
        case "expired":
            why = answer.get("error") or {}
            raise WorkerLost(
                why.get("message")
                or "the Dask worker stopped this agent: it had not heard from this kernel; "
                "check the network to the cluster, then retry"
            )
        case "failed":
            error = answer["error"]
            raise _ERRORS.get(error["type"], ExecutorError)(error["message"])
        case other:
            raise ExecutorError(f"a Dask worker's reply has an unknown outcome {other!r}")


def _result_data(result: AgentResult) -> dict[str, Any]:
    return {
        "chat_id": str(result.chat_id),
        "content": result.content,
        "stop_reason": result.stop_reason,
        "stats": dataclasses.asdict(result.stats),
        "wall_time_s": result.wall_time_s,
        "error": result.error,
    }


def _result(data: Mapping[str, Any]) -> AgentResult:
    stats = dict(data["stats"])
    stats["usage"] = Usage(**stats["usage"])
    return AgentResult(
        chat_id=uuid.UUID(data["chat_id"]),
        content=data["content"],
        stop_reason=data["stop_reason"],
        stats=RunStats(**stats),
        wall_time_s=data["wall_time_s"],
        error=data["error"],
    )


def _error_data(error: BaseException) -> dict[str, str]:
    if isinstance(error, BoonbError):
        known = next(
            (c for c in type(error).__mro__ if _ERRORS.get(c.__name__) is c), ExecutorError
        )
        return {"type": known.__name__, "message": str(error)}
    return {
        "type": ExecutorError.__name__,
        "message": (
            f"the agent crashed on its Dask worker ({type(error).__name__}: {error}); the "
            "worker's log has the traceback. Retry, or run it with %boonb config "
            "executor=local"
        ),
    }
