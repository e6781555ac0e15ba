"""Write every generated TypeScript file of labextension/src from the pydantic models.

Run after changing a frame or a view's messages: ``python scripts/generate_typescript.py``
(or ``python scripts/generate_typescript.py OUT_DIR`` to write them elsewhere).
"""

from __future__ import annotations

import sys
from pathlib import Path

from boonb.typescript import write

SRC = Path(__file__).resolve().parent.parent / "labextension" / "src"

if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else SRC
    for path in write(src):
        print(f"wrote {path}")
