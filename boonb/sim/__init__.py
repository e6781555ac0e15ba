"""A simulated OpenAI-compatible chat-completions server: boonb's offline model.

Deterministic and scriptable, it speaks real HTTP on loopback so clients are tested end to
end: rules map prompt patterns to replies or tool calls; without a rule, a request that
offers boonb's file tools gets a minimal deterministic agent (search, read the matching
files, answer quoting them: :mod:`boonb.sim.planner`) and any other a reply derived from
the input; usage is counted with :func:`count_tokens` and a DeepSeek-style prefix cache, and
faults (429, 5xx, timeouts, broken or malformed streams) can be injected. It always says it
is a simulator: ``model`` contains "sim", replies start with ``[simulator]`` and every
response has the ``x-boonb-simulator: 1`` header.

It depends only on the standard library and pydantic, never on other boonb modules.
"""

from .faults import Fault
from .rules import Rule, load_rules
from .server import SimServer
from .tokens import count_prompt_tokens, count_tokens

__all__ = ["Fault", "Rule", "SimServer", "count_prompt_tokens", "count_tokens", "load_rules"]
