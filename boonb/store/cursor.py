"""Opaque, signed keyset cursors for trace pages.

A cursor names the last row of a page by its sort key (turn_number, started_at, id)
and is bound to the query it came from (chat and turn filter), signed with a
per-database key so a tampered or foreign cursor is refused rather than silently
returning the wrong rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from boonb.store.errors import InvalidCursor

_SIGNATURE_BYTES = 16


@dataclass(frozen=True, slots=True)
class TraceKey:
    """The sort key of one trace row."""

    turn_number: int
    started_at: datetime
    id: UUID


def encode_cursor(key: TraceKey, *, scope: str, secret: bytes) -> str:
    payload = json.dumps(
        [key.turn_number, key.started_at.isoformat(), str(key.id)], separators=(",", ":")
    ).encode()
    return f"{_b64(payload)}.{_b64(_sign(payload, scope, secret))}"


def decode_cursor(cursor: str, *, scope: str, secret: bytes) -> TraceKey:
    if not isinstance(cursor, str) or cursor.count(".") != 1:
        raise InvalidCursor("cursor is malformed; pass back the next_cursor of a previous page")
    body, signature = cursor.split(".")
    try:
        payload = _unb64(body)
        given = _unb64(signature)
    except (binascii.Error, ValueError):
        raise InvalidCursor("cursor is not valid base64; it may have been cut or edited") from None
    if not hmac.compare_digest(given, _sign(payload, scope, secret)):
        raise InvalidCursor(
            "cursor signature does not match: it was edited, or it belongs to another "
            "chat, turn filter or database"
        )
    try:
        turn, started, trace_id = json.loads(payload)
        return TraceKey(int(turn), datetime.fromisoformat(started), UUID(trace_id))
    except (ValueError, TypeError):
        raise InvalidCursor(
            "cursor content is malformed; pass back the next_cursor of a previous page"
        ) from None


def _sign(payload: bytes, scope: str, secret: bytes) -> bytes:
    mac = hmac.new(secret, scope.encode() + b"\0" + payload, hashlib.sha256)
    return mac.digest()[:_SIGNATURE_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
