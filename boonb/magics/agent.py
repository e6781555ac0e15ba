"""``%%agent``: run the cell as a prompt; ``%agent sessions|resume`` for saved chats.

In a kernel the agent's pane (``ChatView``) is the cell's output, displayed before the
run starts so it follows the run live and survives a refresh; terminal IPython gets the
answer as streamed text. A cell returns once the run's rows are committed.
"""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from boonb import api
from boonb.agent.loop import AgentError, AgentResult
from boonb.agent.tools.errors import ToolError
from boonb.frames import Frame, MessageDelta
from boonb.magics.follow import follow
from boonb.magics.lines import parse_options, split_line
from boonb.runtime import get_runtime
from boonb.store import StoreError
from boonb.store.agent_sessions import SavedChat

if TYPE_CHECKING:
    from boonb.widgets.chat import ChatDisplay


def parse_tools(value: str | None) -> list[str] | None:
    if value is None:
        return None
    if value.strip().lower() == "none":
        return []
    return [name.strip() for name in value.split(",") if name.strip()]


LINE_USAGE = (
    "usage: %agent sessions [--all]  |  %agent resume [CHAT_ID]  (and %%agent for a prompt)"
)


@magics_class
class AgentMagics(Magics):
    @line_cell_magic
    def agent(self, line: str, cell: str | None = None) -> Any:
        """``%%agent [options]`` runs the cell as a prompt; ``%agent sessions|resume [ID]``."""
        if cell is None:
            return self._sessions_command(line)
        return self._prompt(line, cell)

    def _sessions_command(self, line: str) -> Any:
        words = split_line(line)
        try:
            if words[:1] == ["sessions"] and words[1:] in ([], ["--all"]):
                print(sessions_text(api.sessions(include_children=words[1:] == ["--all"])))
                return None
            if words[:1] == ["resume"] and len(words) <= 2:
                agent = api.restore(words[1] if len(words) == 2 else None)
                run = api.carry_on(agent)
                shown = show_chat(self.shell, agent)
                if run is None:
                    print(
                        f"boonb: restored chat {agent.chat_id}; it awaits input: "
                        f"%%agent --chat {agent.chat_id}"
                    )
                    return None
                return _run_streaming(agent, api.stored(run), shown)
        except StoreError as exc:
            print(f"boonb: {exc}", file=sys.stderr)
            return None
        print(LINE_USAGE, file=sys.stderr)
        return None

    @magic_arguments()
    @argument("--model", help="model name (default: the provider's default)")
    @argument("--tools", help="comma-separated tool names, or 'none' (default: all registered)")
    @argument("--budget", type=int, help="token budget for this run (input + output tokens)")
    @argument("--max-turns", type=int, default=10, help="most model calls in this run")
    @argument("--chat", help="continue this chat of the kernel instead of starting a new one")
    @argument("--no-wait", action="store_true", help="return a handle at once")
    def _prompt(self, line: str, cell: str) -> Any:
        """Run the cell body as a prompt to an agent with tools; every call is traced."""
        args = parse_options(self._prompt, line)
        prompt = cell.strip()
        if not prompt:
            print("boonb: the cell is empty; write the prompt in the cell body", file=sys.stderr)
            return None
        try:
            if args.chat:
                agent = api.find_chat(args.chat)
            else:
                agent = api.new_agent(
                    model=args.model,
                    tools=parse_tools(args.tools),
                    budget=args.budget,
                    max_turns=args.max_turns,
                    user_ns=self.shell.user_ns if self.shell else None,
                )
        except (StoreError, ToolError, ValueError) as exc:
            print(f"boonb: {exc}", file=sys.stderr)
            return None
        shown = show_chat(self.shell, agent)
        if args.no_wait:
            return api.start(agent, prompt, wait=False)
        return _run_streaming(agent, api.stored(agent.run(prompt)), shown)


def show_chat(shell: Any, agent: api.Agent) -> ChatDisplay | None:
    """Display the agent's chat view, in a kernel only (terminal IPython has no widgets).

    The view is then the run's output: ``_run_streaming`` prints no streamed text for it
    and brings its saved fallback up to date when the run ends.
    """
    if getattr(shell, "kernel", None) is None:
        return None
    from boonb.widgets.chat import display_chat

    return display_chat(agent)


def sessions_text(found: list[SavedChat]) -> str:
    """The table of ``%agent sessions``: one line per chat, its id as every view shows it.

    A workflow's agents (listed with ``--all``) are marked with their run.
    """
    if not found:
        return "no saved chats in this project"
    lines = [f"{'chat':36}  {'state':14}  {'turns':>5}  {'pending':>7}  {'saved':19}  title"]
    for s in found:
        saved = s.last_update.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        title = " ".join(s.title.split())
        if s.workflow_run_id is not None:
            title = f"[workflow {str(s.workflow_run_id)[:8]} · {s.agent_id or 'agent'}] {title}"
        if len(title) > 60:
            title = title[:59] + "…"
        lines.append(
            f"{s.chat_id!s:36}  {s.state:14}  {s.turn_number:>5}  "
            f"{s.pending_tool_calls:>7}  {saved:19}  {title}"
        )
    return "\n".join(lines)


def _run_streaming(
    agent: api.Agent, run: Coroutine[Any, Any, AgentResult], shown: ChatDisplay | None
) -> Any:
    """Wait for the run on this (the cell's) thread; the result is the cell's value.

    Where ``show_chat`` displayed the chat view (``shown``: a kernel), the view is
    the output: nothing is streamed, and once the run ends the view is published again
    so the notebook's saved fallback shows the finished chat. Elsewhere (terminal
    IPython) the answer is printed as it streams in.
    """
    def mine(frame: Frame) -> bool:
        return (
            isinstance(frame, MessageDelta)
            and frame.chat_id == agent.chat_id
            and frame.channel == "content"
        )

    def text(frame: Frame) -> str | None:
        return frame.text if isinstance(frame, MessageDelta) else None

    engine = get_runtime().engine
    future = engine.submit(run)
    try:
        if shown is None:
            result = follow(future, types={"message:delta"}, accept=mine, render=text)
        else:
            result = engine.wait(future)
    except KeyboardInterrupt:
        print("\nboonb: cancelled; open traces were closed as cancelled", file=sys.stderr)
        return None
    except AgentError as exc:
        print(f"\nboonb: {exc}", file=sys.stderr)
        return None
    finally:
        if shown is not None:
            shown.refresh()
    if shown is None:
        print()  # end the streamed line
    return result
