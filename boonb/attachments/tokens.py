"""How many input tokens an image costs, by OpenAI's published rule.

OpenAI (GPT-4o / GPT-4.1 family, "detail: high", the default for large images): the image
is scaled to fit in 2048 x 2048, then so its shortest side is at most 768; each 512 x 512
tile costs 170 tokens, plus 85 for the image. DeepSeek publishes no rule for images
(its chat models are text-only), so the same rule is used for every provider.
"""

from __future__ import annotations

import math

BASE_TOKENS = 85
TILE_TOKENS = 170


def image_tokens(width: int, height: int) -> int:
    """Input tokens of one image at high detail (OpenAI's tile rule)."""
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return BASE_TOKENS + TILE_TOKENS * tiles
