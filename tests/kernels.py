"""A real IPython kernel driven through a kernel client, as Jupyter drives it."""

from __future__ import annotations

import os
import queue
import signal
from pathlib import Path

from jupyter_client.manager import KernelManager


class Kernel:
    def __init__(self, project: Path, env: dict[str, str] | None = None) -> None:
        """A kernel of ``project``; ``env``: extra settings (e.g. ``BOONB_FLUSH_INTERVAL_MS``)."""
        settings = {k: v for k, v in os.environ.items() if not k.startswith("BOONB_")}
        settings.pop("DEEPSEEK_API_KEY", None)
        settings.pop("OPENAI_API_KEY", None)
        settings["BOONB_PROJECT"] = str(project)
        settings.update(env or {})
        self.manager = KernelManager(kernel_name="python3")  # this interpreter's own kernel
        self.manager.start_kernel(env=settings, cwd=str(project))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        self.killed = False

    def execute(self, code: str, timeout: float = 60) -> dict[str, list]:
        """Run a cell; return its outputs by kind (stdout, stderr, result, error)."""
        msg_id = self.client.execute(code)
        out: dict[str, list] = {"stdout": [], "stderr": [], "result": [], "error": []}
        while True:
            try:
                msg = self.client.get_iopub_msg(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no output for {timeout}s; so far {out}") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out[content["name"]].append(content["text"])
            elif kind == "execute_result":
                out["result"].append(content["data"]["text/plain"])
            elif kind == "error":
                out["error"].append(content["evalue"])
            elif kind == "status" and content["execution_state"] == "idle":
                return out

    def stop(self) -> None:
        if self.killed:
            return
        self.killed = True
        self.client.stop_channels()
        if self.manager.has_kernel:
            self.manager.shutdown_kernel(now=False)

    def kill(self) -> None:
        """SIGKILL the kernel process: no atexit, no flush, as in a crash."""
        pid = self.manager.provisioner.pid  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
        self.manager.provisioner.process.wait()  # type: ignore[union-attr]
        self.client.stop_channels()
        self.manager.cleanup_resources()
        self.killed = True
