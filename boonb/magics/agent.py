"""``%%agent``: run the cell as a prompt; ``%agent sessions|resume`` for saved chats.

In a kernel the agent's pane (``ChatView``) is the cell's output, displayed before the
run starts so it follows the run live and survives a refresh; terminal IPython gets the
answer as streamed text. A cell returns once the run's rows are committed.
"""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from IPython.core.magic import Magics, line_cell_magic, magics_class
from pydantic import Field, field_validator

from boonb import api
from boonb.agent.loop import AgentResult
from boonb.errors import BoonbError
from boonb.frames import Frame, MessageDelta
from boonb.magics.follow import follow
from boonb.magics.lines import (
    MagicLine,
    Option,
    Positional,
    help_text,
    parse_subcommand,
)
from boonb.magics.report import print_error, reports_errors
from boonb.runtime import get_runtime
from boonb.store.agent_sessions import SavedChat

if TYPE_CHECKING:
    from boonb.widgets.chat import ChatDisplay


class AgentPrompt(MagicLine):
    """``%%agent [options]``: the options of a prompt cell."""

    command: ClassVar[str] = "%%agent"

    model: Annotated[
        str | None, Option("model name (default: the provider's default)", "NAME")
    ] = None
    tools: Annotated[
        list[str] | None,
        Option("comma-separated tool names, or 'none' (default: all registered)", "A,B|none"),
    ] = None
    budget: Annotated[
        int | None, Field(gt=0), Option("token budget for this run (input + output tokens)", "N")
    ] = None
    max_turns: Annotated[int, Field(ge=1), Option("most model calls in this run", "N")] = 10
    chat: Annotated[
        str | None, Option("continue this chat of the kernel instead of starting a new one", "CHAT")
    ] = None
    no_wait: Annotated[bool, Option("return a handle at once")] = False
    image: Annotated[
        list[str],
        Option(
            "attach an image: a file path, or a notebook variable holding a figure, PIL "
            "image, bytes or path (repeatable)",
            "PATH|VAR",
            repeat=True,
        ),
    ] = []

    @field_validator("tools", mode="before")
    @classmethod
    def _tool_names(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        if value.strip().lower() == "none":
            return []
        return [name.strip() for name in value.split(",") if name.strip()]


class AgentSessions(MagicLine):
    """``%agent sessions [--all]``: the saved chats of the project."""

    command: ClassVar[str] = "%agent sessions"

    all: Annotated[bool, Option("also list the agents that workflows ran")] = False


class AgentResume(MagicLine):
    """``%agent resume [CHAT]``: bring a saved chat back into this kernel."""

    command: ClassVar[str] = "%agent resume"

    chat: Annotated[
        str | None, Positional("CHAT", "the chat to resume (default: the newest saved one)")
    ] = None


AGENT_COMMANDS: dict[str, type[MagicLine]] = {"sessions": AgentSessions, "resume": AgentResume}
AGENT_HELP = help_text(
    "Run the cell as a prompt to an agent with tools (every call is traced), or list and "
    "resume saved chats.",
    AgentPrompt,
    AgentSessions,
    AgentResume,
)


@magics_class
class AgentMagics(Magics):
    """The ``%%agent`` and ``%agent`` magics: prompts, and the project's saved chats."""

    @line_cell_magic
    @reports_errors
    def agent(self, line: str, cell: str | None = None) -> Any:
        if cell is None:
            return self._sessions_command(line)
        return self._prompt(AgentPrompt.parse(line), cell)

    agent.__doc__ = AGENT_HELP

    def _sessions_command(self, line: str) -> Any:
        match parse_subcommand(line, AGENT_COMMANDS, others=[AgentPrompt]):
            case AgentSessions(all=everything):
                print(sessions_text(api.sessions(include_children=everything)))
                return None
            case AgentResume(chat=chat):
                agent = api.restore(chat)
                run = api.carry_on(agent)
                shown = show_chat(self.shell, agent)
                if run is None:
                    print(
                        f"boonb: restored chat {agent.chat_id}; it awaits input: "
                        f"%%agent --chat {agent.chat_id}"
                    )
                    return None
                return _run_streaming(agent, api.stored(run), shown)
            case other:  # a command in the table without a case here: a bug
                raise AssertionError(f"no case for {other!r}")

    def _prompt(self, options: AgentPrompt, cell: str) -> Any:
        """Run the cell body as a prompt to an agent with tools; every call is traced."""
        prompt = cell.strip()
        if not prompt:
            print("boonb: the cell is empty; write the prompt in the cell body", file=sys.stderr)
            return None
        if options.chat:
            agent = api.find_chat(options.chat)
        else:
            agent = api.new_agent(
                model=options.model,
                tools=options.tools,
                budget=options.budget,
                max_turns=options.max_turns,
                user_ns=self.shell.user_ns if self.shell else None,
            )
        # A model that cannot see, or one bad image, refuses them all before any is stored.
        images = api.add_images(image_sources(options.image, self.shell), agent=agent)
        shown = show_chat(self.shell, agent)
        if options.no_wait:
            return api.start(agent, prompt, images=images, wait=False)
        return _run_streaming(agent, api.stored(agent.run(prompt, images=images)), shown)


def image_sources(names: list[str], shell: Any) -> dict[str, Any]:
    """What each ``--image`` names: a notebook variable if there is one, else a file path.

    A variable wins, so ``--image fig`` attaches the figure ``fig`` even if a file ``fig``
    exists; a name that is neither is read as a path (and its error says it is missing).
    """
    namespace = getattr(shell, "user_ns", None) or {}
    return {name: namespace.get(name, name) if name.isidentifier() else name for name in names}


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
    except BoonbError as exc:
        print_error(exc, newline=shown is None)  # after the streamed text, on a line of its own
        return None
    finally:
        if shown is not None:
            shown.refresh()
    if shown is None:
        print()  # end the streamed line
    return result
