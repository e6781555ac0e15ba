"""Prompt-cache telemetry: split each prompt into segments and say where the hits fell.

A provider reports one number of cache-hit tokens per call. To show *why* a call
missed, the prompt is split into segments in the order a prefix cache sees them
(system prompt, tool schemas, conversation history, image attachments). The first
call's segments are measured by their estimated token length, scaled so they add up to
the provider's own ``input_tokens``. After that, what was sent before and is sent
unchanged keeps the size it had (an unchanged system prompt is the same number of
tokens every turn), and the provider's count less those sizes is what is new: it is
shared among the segments that changed or grew, by their estimates. Hits fill the
segments from the start.

Each segment also carries a hash of its content and a hash of the part of it the
previous call already sent; when those differ from the previous call's hash, that
segment changed and broke the cached prefix.

This runs on the engine thread after every model call, with the whole conversation
as its input, so what it learns of each message (its digest and token estimate) and
of each image (its reference) is kept for the next call: a call costs a JSON dump and
a hash of the prompt, and a token count of only what is new in it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from boonb.attachments import IMAGE_PART, AttachmentRef, image_tokens
from boonb.frames import CacheSegment, Segment

SEGMENTS: tuple[Segment, ...] = ("system", "tools", "history", "attachments")

# An image's share of the prompt is not in its URL's length. A stored image (a reference
# with its size in pixels) is counted by OpenAI's published tile rule
# (boonb.attachments.tokens); a bare URL, whose size is unknown, at the fixed amount
# OpenAI bills a low-detail image.
IMAGE_TOKENS = 85

_TOKEN = re.compile(r"\w+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """A provider-independent token estimate (words and punctuation)."""
    return len(_TOKEN.findall(text))


_canonical_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def image_ref(url: str) -> str:
    """What stands for an image in the history: a digest of its URL (data URIs included)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


@dataclass
class PromptSegments:
    """The prompt of one call, split into segments; images are replaced by references."""

    system: list[Any] = field(default_factory=list)
    tools: list[Any] = field(default_factory=list)
    history: list[Any] = field(default_factory=list)
    attachments: list[str] = field(default_factory=list)
    attachment_tokens: list[int] = field(default_factory=list)
    """Estimated input tokens of each image in ``attachments``, in the same order."""

    @classmethod
    def split(
        cls,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]] | None,
        *,
        ref: Callable[[str], str] = image_ref,
    ) -> PromptSegments:
        parts = cls(tools=list(tools or []))
        for message in messages:
            if message.get("role") == "system":
                parts.system.append(message.get("content"))
                continue
            content = message.get("content")
            if isinstance(content, list):
                kept = []
                for part in content:
                    if isinstance(part, dict) and part.get("type") == IMAGE_PART:
                        stored = AttachmentRef.model_validate(part["image"])
                        parts.attachments.append(stored.sha256[:16])
                        parts.attachment_tokens.append(image_tokens(stored.width, stored.height))
                        kept.append({"type": IMAGE_PART, "ref": parts.attachments[-1]})
                    elif isinstance(part, dict) and part.get("type") == "image_url":
                        parts.attachments.append(ref(part.get("image_url", {}).get("url", "")))
                        parts.attachment_tokens.append(IMAGE_TOKENS)
                        kept.append({"type": "image_url", "ref": parts.attachments[-1]})
                    else:
                        kept.append(part)
                message = {**message, "content": kept}
            parts.history.append(message)
        return parts


class _Measures:
    """Digests and token estimates of prompt parts, and image references, call to call.

    Only what the latest call measured is kept, so memory follows the size of the
    prompt. Image URLs are remembered by the string itself: a data URI held in the
    history is the same string object on every call, and it caches its own hash.
    """

    def __init__(self) -> None:
        self._tokens: dict[bytes, int] = {}
        self._refs: dict[str, str] = {}
        self._next_tokens: dict[bytes, int] = {}
        self._next_refs: dict[str, str] = {}

    def part(self, value: Any) -> tuple[bytes, int]:
        """The digest of one message (or tool list) and its estimated tokens."""
        text = _canonical_json(value)
        digest = hashlib.sha256(text.encode()).digest()
        tokens = self._tokens.get(digest)
        if tokens is None:
            tokens = estimate_tokens(text)
        self._next_tokens[digest] = tokens
        return digest, tokens

    def ref(self, url: str) -> str:
        found = self._refs.get(url)
        ref = found if found is not None else image_ref(url)
        self._next_refs[url] = ref
        return ref

    def end_call(self) -> None:
        self._tokens, self._next_tokens = self._next_tokens, {}
        self._refs, self._next_refs = self._next_refs, {}


def _hash(digests: Iterable[bytes]) -> str:
    """The hash of a segment: over its parts' digests, in order."""
    return hashlib.sha256(b"".join(digests)).hexdigest()[:16]


class CacheTracker:
    """Per chat: turns each call's usage into segment rows, remembering the previous call."""

    def __init__(self) -> None:
        self._measures = _Measures()
        # How many history messages and images the previous call sent.
        self._previous: tuple[int, int] | None = None
        # The previous call's segments: their hashes and the sizes they were given.
        self._sent: dict[Segment, tuple[str, int]] = {}

    def resume_after(self, messages: Sequence[dict[str, Any]]) -> None:
        """Carry on a chat restored in a new kernel, whose last model call sent ``messages``.

        The provider's cache outlives the kernel, so the next call is compared with that
        one, as if this tracker had seen it.
        """
        prompt = PromptSegments.split(messages, None)
        self._previous = (len(prompt.history), len(prompt.attachments))
        self._sent = {}  # their sizes were not kept: the next call is measured afresh

    def segments(
        self,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]] | None,
        *,
        input_tokens: int,
        cache_tokens: int,
    ) -> list[CacheSegment]:
        measures = self._measures
        prompt = PromptSegments.split(messages, tools, ref=measures.ref)
        system = [measures.part(content) for content in prompt.system]
        tool_list = [measures.part(prompt.tools)] if prompt.tools else []
        history = [measures.part(message) for message in prompt.history]
        measures.end_call()
        refs = [ref.encode() for ref in prompt.attachments]
        hashes: dict[Segment, str] = {
            "system": _hash(digest for digest, _ in system),
            "tools": _hash(digest for digest, _ in tool_list),
            "history": _hash(digest for digest, _ in history),
            "attachments": _hash(refs),
        }
        # History and attachments grow; what matters is whether what was sent before
        # is still sent unchanged at the start. System and tools are compared whole.
        prefix: dict[Segment, str | None] = dict.fromkeys(SEGMENTS, None)
        if self._previous is not None:
            sent_history, sent_images = self._previous
            prefix = {
                "system": hashes["system"],
                "tools": hashes["tools"],
                "history": _hash(digest for digest, _ in history[:sent_history]),
                "attachments": _hash(refs[:sent_images]),
            }
        sent_history, sent_images = self._previous or (0, 0)
        whole: dict[Segment, int] = {
            "system": sum(tokens for _, tokens in system),
            "tools": sum(tokens for _, tokens in tool_list),
            "history": sum(tokens for _, tokens in history),
            "attachments": sum(prompt.attachment_tokens),
        }
        appended: dict[Segment, int] = {
            "system": 0,
            "tools": 0,
            "history": sum(tokens for _, tokens in history[sent_history:]),
            "attachments": sum(prompt.attachment_tokens[sent_images:]),
        }
        # A segment sent before and still sent unchanged at the start keeps its size, and
        # only what was appended to it is new; a changed segment is new as a whole.
        kept: dict[Segment, int] = dict.fromkeys(SEGMENTS, 0)
        new = dict(whole)
        for name in SEGMENTS:
            before = self._sent.get(name)
            if before is not None and prefix[name] == before[0]:
                kept[name], new[name] = before[1], appended[name]
        sizes = _sizes(kept, new, whole, input_tokens)
        self._previous = (len(history), len(refs))
        self._sent = {name: (hashes[name], sizes[name]) for name in SEGMENTS}
        rows = []
        left = cache_tokens
        for name in SEGMENTS:
            hit = min(left, sizes[name])
            left -= hit
            rows.append(
                CacheSegment(
                    segment=name,
                    tokens=sizes[name],
                    hit_tokens=hit,
                    miss_tokens=sizes[name] - hit,
                    hash=hashes[name],
                    prefix_hash=prefix[name],
                )
            )
        return rows


def _sizes(
    kept: dict[Segment, int],
    new: dict[Segment, int],
    whole: dict[Segment, int],
    total: int,
) -> dict[Segment, int]:
    """Segment sizes adding up to ``total``: ``kept`` as it was, the rest shared by ``new``.

    When the kept sizes alone exceed the provider's count (a provider that counts the
    same text differently from call to call), every segment is measured afresh from its
    ``whole`` estimate.
    """
    rest = total - sum(kept.values())
    if rest < 0:
        return _scale(whole, total)
    if sum(new.values()) == 0:
        # Nothing new, yet the count moved: the provider's own framing; history holds it.
        return {**kept, "history": kept["history"] + rest}
    shares = _scale(new, rest)
    return {name: kept[name] + shares[name] for name in SEGMENTS}


def _scale(estimates: dict[Segment, int], total: int) -> dict[Segment, int]:
    """Scale estimates to add up to the provider's ``total`` (largest remainders get the rest)."""
    estimated = sum(estimates.values())
    if estimated == 0:
        return {name: total if name == "history" else 0 for name in SEGMENTS}
    exact = {name: estimates[name] * total / estimated for name in SEGMENTS}
    sizes = {name: int(exact[name]) for name in SEGMENTS}
    short = total - sum(sizes.values())
    for name in sorted(SEGMENTS, key=lambda n: exact[n] - sizes[n], reverse=True)[:short]:
        sizes[name] += 1
    return sizes
