"""OpenTelemetry ids derived from boonb's, so every export of a row gives the same span.

The live export and a later backfill never meet, yet must name each span alike (a backend
then sees one span, not two). So ids are functions of the stored ids: a tree's trace id is
its root's UUID, all 128 bits; a row's span id is 64 bits of a hash of its UUID. A hash,
not half the UUID: boonb's ids are UUIDv7, whose first half is a millisecond clock shared
by every call made in the same millisecond.
"""

from __future__ import annotations

from hashlib import blake2b
from uuid import UUID


def trace_id_of(root: UUID) -> int:
    """The trace id of the tree rooted at ``root`` (a chat the user started, or a run)."""
    return root.int or 1  # 0 is OpenTelemetry's "invalid"; no UUID we mint is 0


def span_id_of(row: UUID) -> int:
    """The span id of the ``tool_traces`` row ``row``."""
    digest = blake2b(row.bytes, digest_size=8, person=b"boonb-span").digest()
    return int.from_bytes(digest, "big") or 1
