"""Write labextension/src/frames.ts from the pydantic frame models (run after changing them)."""

from __future__ import annotations

import sys
from pathlib import Path

from boonb.frames_typescript import to_typescript

TARGET = Path(__file__).resolve().parent.parent / "labextension" / "src" / "frames.ts"

if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else TARGET
    target.write_text(to_typescript(), encoding="utf-8")
    print(f"wrote {target}")
