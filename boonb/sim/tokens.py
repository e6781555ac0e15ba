r"""Deterministic token counting and DeepSeek-style prefix caching.

The simulator has no real tokenizer: a *token* is a run of word characters or a single
punctuation mark (``\w+|[^\w\s]``). That is crude but deterministic, so tests and other
modules can predict every usage figure with :func:`count_tokens` and
:func:`count_prompt_tokens`.

Prompt tokens are taken in the order a prefix cache sees them: tool schemas first, then the
messages (see :func:`prompt_tokens`).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .messages import canonical_message

TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Split text into simulator tokens."""
    return TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """Count the simulator tokens in ``text``: the unit of every usage figure."""
    return len(TOKEN_RE.findall(text))


def prompt_tokens(
    messages: Iterable[Mapping[str, Any]], tools: Iterable[Any] | None = None
) -> list[str]:
    """Tokens of a prompt in cache order: tool schemas (canonical JSON), then messages."""
    tokens: list[str] = []
    for tool in tools or ():
        tokens += tokenize(json.dumps(tool, sort_keys=True, ensure_ascii=False))
    for message in messages:
        tokens += tokenize(canonical_message(message))
    return tokens


def count_prompt_tokens(
    messages: Iterable[Mapping[str, Any]], tools: Iterable[Any] | None = None
) -> int:
    """``prompt_tokens`` the simulator reports for these messages and tool schemas."""
    return len(prompt_tokens(messages, tools))


class PrefixCache:
    """Server-wide memory of prompt prefixes, cut at every ``block`` tokens.

    Like DeepSeek's disk cache, only whole blocks are cached: a request hits the longest
    block-aligned prefix that an earlier request also had, so resending a conversation with
    one more message hits everything up to the last shared block boundary.
    """

    def __init__(self, block: int = 64, *, max_entries: int = 200_000) -> None:
        if block < 1:
            raise ValueError(f"cache_block must be a positive number of tokens, got {block}")
        self.block = block
        self._max_entries = max_entries
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def _boundary_digests(self, tokens: Sequence[str]) -> list[tuple[int, bytes]]:
        digest = hashlib.sha256()
        boundaries: list[tuple[int, bytes]] = []
        for position, token in enumerate(tokens, start=1):
            # Length-prefixed so that token boundaries are part of the hash.
            digest.update(f"{len(token)}:{token}".encode())
            if position % self.block == 0:
                boundaries.append((position, digest.digest()))
        return boundaries

    def lookup_and_remember(self, tokens: Sequence[str]) -> int:
        """Return the hit tokens for this prompt, then remember its block prefixes."""
        boundaries = self._boundary_digests(tokens)
        with self._lock:
            hit = 0
            for length, digest in boundaries:
                if digest in self._seen:
                    hit = length
            for _, digest in boundaries:
                self._seen[digest] = None
                self._seen.move_to_end(digest)
            while len(self._seen) > self._max_entries:
                self._seen.popitem(last=False)
        return hit

    def reset(self) -> None:
        """Forget every prefix, so the next request is all misses."""
        with self._lock:
            self._seen.clear()
