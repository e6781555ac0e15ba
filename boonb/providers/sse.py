"""Server-sent events: turn the lines of a ``text/event-stream`` body into event data."""

from __future__ import annotations

DONE = "[DONE]"


class SSEDecoder:
    """Collects ``data:`` lines and hands back one event's data at each blank line.

    Comments (``:`` lines) and other fields (``event:``, ``id:``, ``retry:``) are ignored:
    chat-completions streams carry everything in ``data``.
    """

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        """Feed one line (without its line ending); returns an event's data when one ends."""
        line = line.rstrip("\r")
        if not line:
            return self.flush()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None

    def flush(self) -> str | None:
        """Return the pending event's data, if any (at end of body: a missing last blank line)."""
        if not self._data:
            return None
        data = "\n".join(self._data)
        self._data = []
        return data
