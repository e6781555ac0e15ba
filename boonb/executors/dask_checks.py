"""What the Dask executor checks in the kernel before a run leaves it (no Dask here).

The tools are pickled here, once each, so one that cannot be pickled is refused by name
before anything is sent; a model server the workers cannot reach is refused as well.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from urllib.parse import urlsplit

import cloudpickle

from boonb.agent.tools.definition import Tool
from boonb.errors import ExecutorError, ExecutorUnavailable, ToolError
from boonb.executors.host import KernelOnlyTool
from boonb.executors.spec import ProviderWire


def pickled_tool(tool: Tool) -> bytes:
    """The tool as sent to the workers (see :func:`shippable`), pickled; refused if it cannot be.

    A tool must be refused here: an actor call whose arguments fail to serialise never
    returns (distributed loses the error in a callback).
    """
    try:
        return bytes(cloudpickle.dumps(shippable(tool)))
    except Exception as exc:  # pickling raises many types (TypeError, PicklingError, ...)
        raise ExecutorError(
            f"the tool {tool.name!r} cannot be sent to the Dask workers "
            f"({type(exc).__name__}: {exc}); define it at the top level of a notebook "
            "cell or in a module the workers can import, or run with "
            "%boonb config executor=local"
        ) from None


def not_loaded(address: str, failed: dict[str, str]) -> ExecutorError:
    """The error of tools that pickled here but did not load on the worker at ``address``."""
    named = "; ".join(f"the tool {name!r}: {why}" for name, why in sorted(failed.items()))
    return ExecutorError(
        f"the Dask worker {address} could not load {named}. A tool (or what it calls) from "
        "a module only this kernel can import is sent by reference: install that module on "
        "the workers (or client.upload_file it), or define the tool and what it calls in a "
        "notebook cell, or run with %boonb config executor=local"
    )


def _refused(*args: object, **kwargs: object) -> None:
    """Stands in for a kernel-only tool's function on a worker (never called there)."""
    raise ToolError("this tool runs only in the kernel")


def shippable(tool: Tool) -> Tool:
    """The tool as sent to a worker: a kernel-only one without its function.

    Its function reaches into the kernel (the notebook, the kernel's tasks) and may not
    pickle; the worker only needs its name and schema, to refuse it as the kernel would.
    """
    if not tool.kernel_only:
        return tool
    stub = KernelOnlyTool(tool)
    stub.function = _refused
    return stub


def check_reachable(provider: ProviderWire, worker: str) -> None:
    """Refuse a model server on this machine's loopback when the worker is elsewhere."""
    url_host = urlsplit(provider.profile.base_url).hostname or ""
    worker_host = urlsplit(worker).hostname or ""
    if not _loopback(url_host) or _loopback(worker_host) or worker_host in _this_machine():
        return
    what = (
        "the built-in simulator listens on this machine only"
        if provider.name == "sim"
        else f"the model server at {provider.profile.base_url} is on this machine's loopback"
    )
    raise ExecutorUnavailable(
        f"{what}, and the Dask worker {worker} runs on another host; give the workers a "
        "model server they can reach (%boonb config base_url=...), or executor=local"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.cache
def _this_machine() -> frozenset[str]:
    """The names and addresses of this host, resolved once (a slow resolver stalls the engine)."""
    try:
        return frozenset({socket.gethostname(), *socket.gethostbyname_ex(socket.gethostname())[2]})
    except OSError:
        return frozenset({socket.gethostname()})
