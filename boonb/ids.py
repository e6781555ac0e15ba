"""Time-ordered ids for what is minted on the agent's path (traces, messages).

A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, the version and variant, then 74
random bits. Ids of one chat sort by creation time, and each costs a fraction of
``uuid.uuid4()``, which reads ``os.urandom`` and runs ``UUID.__init__``'s checks.

The random bits come from :mod:`random`, not the OS: these ids name rows, they do
not guard anything, and 74 random bits per millisecond make a collision negligible.
"""

from __future__ import annotations

from random import getrandbits
from time import time_ns
from uuid import UUID, SafeUUID

_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)
_RANDOM_BITS = ((1 << 76) - 1) & ~(0b11 << 62)  # the low 76 bits but the variant's two
_new = object.__new__
# UUID forbids attribute assignment; its slots' own setters are how it sets itself.
_set_int = UUID.__dict__["int"].__set__
_set_is_safe = UUID.__dict__["is_safe"].__set__
_UNKNOWN = SafeUUID.unknown


def new_id() -> UUID:
    """A fresh UUIDv7."""
    value = (time_ns() // 1_000_000) << 80 | _VERSION_AND_VARIANT | getrandbits(76) & _RANDOM_BITS
    # The value is well-formed by construction, so skip UUID.__init__'s parsing and checks
    # (CPython 3.13 builds UUIDs from ints the same way internally).
    uuid = _new(UUID)
    _set_int(uuid, value)
    _set_is_safe(uuid, _UNKNOWN)
    return uuid
