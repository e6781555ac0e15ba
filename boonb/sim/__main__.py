"""``python -m boonb.sim``: run the simulator as a standalone server until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .rules import load_rules
from .server import SimServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m boonb.sim",
        description="Serve boonb's simulated OpenAI-compatible chat-completions API.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8011, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--no-vision", action="store_true", help="refuse image_url parts (400)")
    parser.add_argument("--usage-style", choices=["deepseek", "openai"], default="deepseek")
    parser.add_argument("--rules", help="JSON file with a list of rules")
    parser.add_argument("--cache-block", type=int, default=64, help="prefix cache block size")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    rules = load_rules(args.rules) if args.rules else []
    sim = SimServer(
        host=args.host,
        port=args.port,
        latency=args.latency,
        vision=not args.no_vision,
        usage_style=args.usage_style,
        rules=rules,
        cache_block=args.cache_block,
    )
    stopped = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    # SIGTERM ends the server as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, _stop)
    url = sim.start()
    print(f"boonb simulator (not a real model) serving at {url}", flush=True)
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
