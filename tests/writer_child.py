"""A separate OS process that writes traces into a shared database (used by the store tests).

usage: python writer_child.py DB_PATH CHAT_ID START COUNT BATCH

Writes COUNT traces with ids uuid5(CHAT_ID, index) from START, flushing every BATCH
rows and printing "flushed N" once the first N of its rows are on disk.
"""

from __future__ import annotations

import sys
import uuid

from boonb.frames import ToolTraceComplete
from boonb.store import Store
from tests.conftest import make_trace


def main() -> None:
    path, chat, start, count, batch = sys.argv[1], uuid.UUID(sys.argv[2]), *map(int, sys.argv[3:])
    store = Store(path, flush_interval=0.02, lock_timeout=60)
    for i in range(start, start + count):
        trace_id = uuid.uuid5(chat, str(i))
        store.writer.enqueue(
            ToolTraceComplete(trace=make_trace(chat_id=chat, trace_id=trace_id, seconds=i))
        )
        if (i - start + 1) % batch == 0:
            store.writer.flush()
            print(f"flushed {i - start + 1}", flush=True)
    store.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
