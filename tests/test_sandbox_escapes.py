"""The escape corpus: every attempt is refused (violation) or killed, with a structured
result; the host and the pool are unaffected and nothing reaches the disk."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from boonb.workflow.sandbox import SandboxPool
from tests.test_sandbox import RecordingHandler

pytestmark = pytest.mark.slow

MARKER = "/tmp/boonb-sandbox-escape-marker"

# (id, source). Each would, if it worked, reach the interpreter's internals, the file
# system, the network or the process table; most would also write MARKER.
ESCAPES: list[tuple[str, str]] = [
    # imports, every spelling
    ("import", "import os\nos.system('touch " + MARKER + "')"),
    ("import-as", "import os as o"),
    ("import-dotted", "import os.path"),
    ("from-import", "from os import system"),
    ("from-import-star", "from os import *"),
    ("relative-import", "from . import secrets"),
    ("dunder-import", "__import__('os').system('touch " + MARKER + "')"),
    ("builtins-dict-import", "__builtins__['__import__']('os')"),
    ("importlib-name", "importlib.import_module('os')"),
    ("import-in-function", "def f():\n    import subprocess\nf()"),
    # file access
    ("open-read", "open('/etc/passwd').read()"),
    ("open-write", "open('" + MARKER + "', 'w').write('x')"),
    ("fullwidth-open", "\uff4f\uff50\uff45\uff4e('" + MARKER + "', 'w')"),
    ("pathlib-write", "pathlib.Path('" + MARKER + "').write_text('x')"),
    ("io-open", "io.open('" + MARKER + "', 'w')"),
    # code from strings
    ("eval", "eval('1 + 1')"),
    ("exec", "exec('import os')"),
    ("compile", "compile('1', 'x', 'eval')"),
    # reflection builtins
    ("getattr-builtin", "getattr((), '__class__')"),
    ("setattr-builtin", "setattr(log, 'x', 1)"),
    ("vars", "vars()"),
    ("dir", "dir(log)"),
    ("globals", "globals()['_getattr_']"),
    ("locals", "locals()"),
    ("type-builtin", "type(log)"),
    ("object-builtin", "object.__subclasses__()"),
    ("super", "super()"),
    ("breakpoint", "breakpoint()"),
    # dunder walks
    ("class-bases-subclasses", "().__class__.__bases__[0].__subclasses__()"),
    ("mro-walk", "''.__class__.__mro__[1].__subclasses__()"),
    ("function-globals", "agent.__globals__['os']"),
    ("lambda-code", "(lambda: 0).__code__"),
    ("method-self", "log.__self__"),
    ("builtin-self-module", "sorted.__self__"),
    ("attribute-on-type", "str.mro()"),
    ("dict-fromkeys", "dict.fromkeys([1])"),
    ("attribute-on-function", "parallel.func_globals"),
    ("agentref-internal", "a = agent('a', prompt='p')\na.to_json"),
    ("agentref-private", "a = agent('a', prompt='p')\na._api"),
    ("write-api-object", "b = budget(10)\nb.limit = 10**9"),
    ("write-function-attr", "def f():\n    pass\nf.x = 1"),
    # frames, generators, coroutines, tracebacks
    ("generator-frame", "g = (x for x in [1])\ng.gi_frame.f_globals"),
    ("generator-code", "def gen():\n    yield 1\ngen().gi_code"),
    ("generator-method", "def gen():\n    yield 1\ngen().throw"),
    ("traceback-frame", "try:\n    1 / 0\nexcept Exception as e:\n    e.__traceback__"),
    ("exception-with-traceback", "try:\n    1 / 0\nexcept Exception as e:\n    e.with_traceback"),
    ("exception-obj", "try:\n    [].nope\nexcept Exception as e:\n    e.obj"),
    ("f-back", "def f():\n    pass\nf.f_back"),
    ("async-def", "async def f():\n    pass"),
    ("await", "async def f():\n    await g()"),
    ("except-star", "try:\n    pass\nexcept* ValueError:\n    pass"),
    # str.format attribute access
    ("str-format-attr", "'{0.__class__}'.format(1)"),
    ("str-format-plain", "'{0}'.format(1)"),
    ("str-format-map", "'{x.__class__}'.format_map({'x': 1})"),
    ("format-builtin", "format(1, 'x')"),
    ("fstring-dunder", "f'{(1).__class__}'"),
    # builtins and guards through names
    ("builtins-name", "__builtins__"),
    ("builtins-module", "builtins.open"),
    ("rebind-guard", "_getattr_ = lambda o, n: o"),
    ("walrus-guard", "(_step_ := None)"),
    ("class-def", "class A:\n    pass"),
    ("metaclass", "class A(metaclass=log):\n    pass"),
    ("global-stmt", "def f():\n    global log\n    log = 1"),
    # native code, sockets, processes, signals
    ("ctypes", "ctypes.CDLL(None).system(b'touch " + MARKER + "')"),
    ("socket", "socket.socket().connect(('127.0.0.1', 22))"),
    ("subprocess", "subprocess.run(['touch', '" + MARKER + "'])"),
    ("os-fork", "os.fork()"),
    ("os-exec", "os.execv('/bin/sh', ['sh', '-c', 'touch " + MARKER + "'])"),
    ("os-system", "os.system('touch " + MARKER + "')"),
    ("signal-ignore-xcpu", "signal.signal(signal.SIGXCPU, signal.SIG_IGN)"),
    ("signal-kill-parent", "os.kill(os.getppid(), 9)"),
    ("sys-modules", "sys.modules['os']"),
    ("gc-objects", "gc.get_objects()"),
    ("inspect-stack", "inspect.stack()"),
    # the API's own objects
    ("args-mutation", "args['x'] = 1"),
    ("args-attribute", "args.__class__"),
    ("print-to-file", "print('x', file=log)"),
    ("isinstance-object", "isinstance(1, object)"),
]


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    pool = SandboxPool(size=2)
    yield pool
    asyncio.run(pool.aclose())


def test_corpus_is_large_and_distinct():
    ids = [escape_id for escape_id, _ in ESCAPES]
    assert len(ids) >= 40
    assert len(set(ids)) == len(ids)
    assert len({source for _, source in ESCAPES}) == len(ESCAPES)


@pytest.mark.parametrize(("escape_id", "source"), ESCAPES, ids=[e for e, _ in ESCAPES])
def test_escape_attempt_is_refused_or_killed(pool, escape_id, source):
    async def scenario():
        handler = RecordingHandler()
        attempt = await pool.run(source, args={"x": 0}, handler=handler, timeout=10)
        follow_up = await pool.run("[n * 2 for n in range(3)]", args={}, handler=handler)
        return attempt, follow_up

    attempt, follow_up = asyncio.run(scenario())
    assert attempt.status in ("violation", "killed"), attempt
    assert attempt.error
    if attempt.status == "violation":
        assert attempt.violation
    assert not os.path.exists(MARKER)
    assert follow_up.status == "completed" and follow_up.result == [0, 2, 4], follow_up
