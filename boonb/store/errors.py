"""The store's exceptions: each says what was wrong and what to do next."""

from __future__ import annotations

from boonb.errors import StoreError


class DatabaseUnusable(StoreError):
    """The database path cannot be used (not a DuckDB file, or not writable)."""


class DatabaseDamaged(DatabaseUnusable):
    """The database file is damaged (e.g. truncated); boonb neither reads nor writes it."""


class DatabaseTooNew(DatabaseUnusable):
    """A newer boonb wrote the database (a schema version unknown here); it is left untouched."""


class DatabaseLocked(StoreError):
    """Another process kept the database file for longer than the lock timeout."""


class InvalidQuery(StoreError, ValueError):
    """A query parameter is out of range or malformed."""


class InvalidLimit(InvalidQuery):
    """``limit`` is not an integer from 1 to the maximum page size."""


class InvalidCursor(InvalidQuery):
    """The pagination cursor is malformed, tampered with, or from another query."""


class InvalidChatId(InvalidQuery):
    """The chat id is not a UUID."""


class InvalidSessionId(InvalidQuery):
    """The session id is not a UUID."""


class InvalidTraceId(InvalidQuery):
    """The trace id is not a UUID."""
