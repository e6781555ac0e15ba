"""Images in a chat: sent as data URIs to a vision model, kept as references everywhere else.

The simulator over HTTP stands in for the model, a real DuckDB file for the store.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import asdict
from pathlib import Path

import httpx
import pytest
from PIL import Image

from boonb.agent import Agent, tool
from boonb.agent.cache import PromptSegments
from boonb.agent.sessions import snapshot
from boonb.attachments import (
    AttachmentNotFound,
    AttachmentRef,
    AttachmentStore,
    UnreadableImage,
    image_tokens,
)
from boonb.errors import AgentError
from boonb.frames import MessageComplete, ModelCallComplete, TurnStart
from boonb.providers import Capabilities, CapabilityError, ChatClient, get_profile
from boonb.sim import Rule
from tests.conftest import Env


def png(size: tuple[int, int] = (1200, 800), color: str = "orange") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def attach(env: Env, data: bytes, name: str = "plot.png") -> AttachmentRef:
    return AttachmentStore(env.project, upload_dir=env.project.parent / "up").add_bytes(
        data, name=name
    )


def run_images(env: Env, agent: Agent, prompt: str, images: list[AttachmentRef]):
    return env.engine.run(agent.run(prompt, images=images))


def sent_images(request: dict) -> list[bytes]:
    """The bytes of every image data URI in one request the simulator received."""
    found = []
    for message in request["messages"]:
        if isinstance(message["content"], list):
            for part in message["content"]:
                if part["type"] == "image_url":
                    url = part["image_url"]["url"]
                    head, _, payload = url.partition(",")
                    assert head.startswith("data:image/") and head.endswith(";base64")
                    found.append(base64.b64decode(payload))
    return found


def text_only_agent(env: Env) -> Agent:
    profile = get_profile("sim").with_overrides(
        base_url=env.sim.base_url,
        capabilities={"sim-chat": Capabilities(tools=True, vision=False, reasoning=False)},
    )
    agent = env.agent(tools=[])
    agent.client = ChatClient(profile, max_retries=0)
    return agent


def test_vision_model_receives_the_file_bytes_as_data_uri(env: Env) -> None:
    data = png()
    ref = attach(env, data)
    agent = env.agent(tools=[])
    result = run_images(env, agent, "what does the plot show?", [ref])
    assert "with 1 image" in result.content
    assert sent_images(env.sim.requests[-1]) == [data]


def test_later_turns_send_the_image_again(env: Env) -> None:
    first, second = png(color="red"), png((300, 200), "blue")
    agent = env.agent(tools=[])
    run_images(env, agent, "look", [attach(env, first, "a.png")])
    run_images(env, agent, "and this one", [attach(env, second, "b.png")])
    env.run(agent, "compare them")
    assert sent_images(env.sim.requests[-1]) == [first, second]


def test_history_traces_frames_and_snapshot_carry_references_not_data(env: Env) -> None:
    data = png()
    ref = attach(env, data)
    agent = env.agent(tools=[])
    run_images(env, agent, "describe", [ref])
    env.run(agent, "thanks")
    encoded = base64.b64encode(data).decode()[:200]
    stored = json.dumps(agent.messages)
    assert "data:image" not in stored and ref.sha256 in stored
    snap = json.dumps(snapshot(agent, agent_session_id=agent.chat_id), default=str)
    assert "data:image" not in snap and encoded not in snap and ref.sha256 in snap
    frames = json.dumps([asdict(f) for f in env.frames], default=str)
    assert "data:image" not in frames and encoded not in frames and ref.sha256 in frames
    traces = env.rows("SELECT CAST(input AS VARCHAR) FROM tool_traces WHERE kind = 'model'")
    assert traces and not any("data:image" in t or encoded in t for (t,) in traces)
    assert any(ref.sha256 in t for (t,) in traces)


def test_image_is_a_message_parts_row_with_its_reference(env: Env) -> None:
    ref = attach(env, png((640, 480)))
    agent = env.agent(tools=[])
    run_images(env, agent, "describe", [ref])
    rows = env.rows(
        "SELECT position, url, mime, size_bytes, sha256, CAST(data AS VARCHAR) "
        "FROM message_parts WHERE type = 'image'"
    )
    assert len(rows) == 1
    position, url, mime, size, sha256, data = rows[0]
    assert (position, url, mime, size, sha256) == (
        1,
        f"attachment:{ref.sha256}",
        "image/png",
        ref.size_bytes,
        ref.sha256,
    )
    assert json.loads(data) == {"width": 640, "height": 480, "name": "plot.png"}


def test_attachments_segment_counts_image_tokens_by_tile_rule(env: Env) -> None:
    ref = attach(env, png((1024, 1024)))
    split = PromptSegments.split([{"role": "user", "content": [ref.to_part()]}], None)
    assert split.attachment_tokens == [image_tokens(1024, 1024)] == [765]
    agent = env.agent(tools=[])
    run_images(env, agent, "describe", [ref])
    calls = [f for f in env.frames if isinstance(f, ModelCallComplete)]
    segments = {s.segment: s for s in calls[-1].cache}
    assert segments["attachments"].tokens > segments["system"].tokens


def test_text_only_model_refuses_before_sending_and_keeps_history(env: Env) -> None:
    agent = text_only_agent(env)
    env.run(agent, "hello")
    before, requests = list(agent.messages), len(env.sim.requests)
    with pytest.raises(CapabilityError) as caught:
        run_images(env, agent, "what is this?", [attach(env, png())])
    message = str(caught.value)
    assert "cannot read images" in message and "Nothing was sent" in message
    assert "vision=true" in message
    assert agent.messages == before
    assert len(env.sim.requests) == requests
    result = env.run(agent, "then just tell me a joke")
    assert "tell me a joke" in result.content
    assert env.rows("SELECT count(*) FROM message_parts WHERE type = 'image'") == [(0,)]


def test_missing_attachment_is_refused_before_sending(env: Env) -> None:
    ref = attach(env, png())
    (env.project / ".boonb" / "attachments" / ref.file_name).unlink()
    agent = env.agent(tools=[])
    with pytest.raises(Exception, match="attach the image again"):
        run_images(env, agent, "look", [ref])
    assert [m["role"] for m in agent.messages] == ["system"]
    assert env.sim.requests == []


# The simulator's vision switch.


def chat(env: Env, url: str) -> httpx.Response:
    body = {
        "model": "sim-chat",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            },
        ],
    }
    return httpx.post(f"{env.sim.base_url}/chat/completions", json=body)


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def test_sim_with_vision_off_refuses_like_deepseek(env: Env) -> None:
    env.sim.vision = False
    response = chat(env, data_uri(png((8, 8))))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_request_error"
    assert error["message"].startswith(
        "Failed to deserialize the JSON body into the target type: messages[0]: "
        "unknown variant `image_url`, expected `text` at line 1 column "
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (data_uri(b"%PDF-1.7 not an image", "image/png"), "not a PNG, JPEG, GIF or WebP"),
        ("data:image/png;base64,@@@not base64@@@", "not valid base64"),
        ("data:image/png,rawbytes", "must be base64"),
        (data_uri(png((8, 8)), "image/jpeg"), "says image/jpeg but the bytes are image/png"),
        ("file:///etc/passwd", "expected a data URI"),
    ],
)
def test_sim_with_vision_on_checks_the_data_uri(env: Env, url: str, problem: str) -> None:
    response = chat(env, url)
    assert response.status_code == 400
    assert problem in response.json()["error"]["message"]


def test_sim_with_vision_on_accepts_a_valid_image(env: Env) -> None:
    assert chat(env, data_uri(png((8, 8)))).status_code == 200


def test_vision_setting_overrides_the_profile(tmp_path: Path) -> None:
    from boonb import config
    from boonb.agent.provider import choose_provider

    seen = choose_provider(config.Settings(provider="deepseek", vision=True))
    assert seen.profile.spec(seen.model).capabilities.vision
    blind = choose_provider(config.Settings(provider="openai", vision=False))
    assert not blind.profile.spec(blind.model).capabilities.vision
    default = choose_provider(config.Settings(provider="deepseek"))
    assert not default.profile.spec(default.model).capabilities.vision


def test_changing_the_vision_setting_gives_a_client_that_knows_it(tmp_path: Path) -> None:
    from boonb import config
    from boonb.runtime import Runtime

    runtime = Runtime()
    try:
        seeing = runtime.client(runtime.provider())
        assert seeing.profile.spec(seeing.model).capabilities.vision
        config.update(vision=False)
        blind = runtime.client(runtime.provider())
        assert not blind.profile.spec(blind.model).capabilities.vision
    finally:
        runtime.shutdown()


def test_images_the_server_refuses_leave_the_chat_usable(env: Env) -> None:
    env.sim.vision = False  # the profile says it can see; the server says otherwise
    agent = env.agent(tools=[], max_retries=0)
    env.run(agent, "hi")
    before = list(agent.messages)
    with pytest.raises(AgentError, match="refused the message with 1 image.*taken out"):
        run_images(env, agent, "what is this?", [attach(env, png())])
    assert agent.messages == before
    result = env.run(agent, "just text then")
    assert "just text then" in result.content
    assert sent_images(env.sim.requests[-1]) == []


def test_rebuilt_request_shows_the_image_by_reference(env: Env) -> None:
    ref = attach(env, png((320, 240)))
    agent = env.agent(tools=[])
    run_images(env, agent, "describe", [ref])
    [(trace_id,)] = env.rows("SELECT id FROM tool_traces WHERE kind = 'model'")
    detail = env.store.traces.detail(trace_id)
    assert detail is not None and detail.request is not None
    [user] = [m for m in detail.request.messages if m["role"] == "user"]
    image = user["content"][1]
    assert image["image_url"]["url"] == f"attachment:{ref.sha256}"
    assert image["attachment"] == ref.model_dump(mode="json")
    assert "data:" not in json.dumps(detail.request.model_dump(mode="json"))


def test_chat_with_earlier_images_refuses_a_text_only_model_without_change(env: Env) -> None:
    agent = env.agent(tools=[])
    run_images(env, agent, "look", [attach(env, png())])
    blind = text_only_agent(env)
    agent.client = blind.client  # the chat carries on with a model that cannot see
    before, requests = list(agent.messages), len(env.sim.requests)
    with pytest.raises(CapabilityError, match="holds 1 image.*start a new chat"):
        env.run(agent, "and now?")
    assert agent.messages == before and len(env.sim.requests) == requests


# Review mends: a refused message leaves nothing behind, data URIs in list prompts, resume.


def user_texts(env: Env) -> list[str]:
    rows = env.rows(
        "SELECT p.text FROM messages m JOIN message_parts p ON p.message_id = m.id "
        "WHERE m.role = 'user' AND p.type = 'text' ORDER BY m.created_at, p.position"
    )
    return [text for (text,) in rows]


def test_a_refused_message_leaves_no_row_frame_or_wrong_rebuilt_request(env: Env) -> None:
    env.sim.vision = False  # the profile says it can see; the server says otherwise
    agent = env.agent(tools=[], max_retries=0)
    env.run(agent, "hi")
    ref = attach(env, png())
    with pytest.raises(AgentError, match="refused"):
        run_images(env, agent, "what is this?", [ref])
    env.run(agent, "just text then")

    assert user_texts(env) == ["hi", "just text then"]
    assert env.rows("SELECT count(*) FROM message_parts WHERE type = 'image'") == [(0,)]
    shown = [f for f in env.frames if isinstance(f, MessageComplete) and f.role == "user"]
    assert [f.content for f in shown] == ["hi", "just text then"]
    [(last,)] = env.rows(
        "SELECT id FROM tool_traces WHERE kind = 'model' ORDER BY started_at DESC LIMIT 1"
    )
    detail = env.store.traces.detail(last)
    assert detail is not None and detail.request is not None
    rebuilt = [(m["role"], m["content"]) for m in detail.request.messages]
    assert rebuilt == [(m["role"], m["content"]) for m in env.sim.requests[-1]["messages"]]


def list_prompt(text: str, *urls: str) -> list[dict]:
    return [
        {"type": "text", "text": text},
        *({"type": "image_url", "image_url": {"url": url}} for url in urls),
    ]


def test_data_uri_in_a_list_prompt_is_stored_and_kept_as_a_reference(env: Env) -> None:
    data = png((50, 40))
    agent = env.agent(tools=[])
    env.engine.run(agent.run(list_prompt("what is it?", data_uri(data))))
    env.run(agent, "and again")

    assert sent_images(env.sim.requests[-1]) == [data]
    sha = hashlib.sha256(data).hexdigest()
    encoded = base64.b64encode(data).decode()[:100]
    snap = json.dumps(snapshot(agent, agent_session_id=agent.chat_id), default=str)
    frames = json.dumps([asdict(f) for f in env.frames], default=str)
    traces = json.dumps(env.rows("SELECT CAST(input AS VARCHAR) FROM tool_traces"))
    for kept in (json.dumps(agent.messages), snap, frames, traces):
        assert "data:image" not in kept and encoded not in kept and sha in kept
    assert env.rows("SELECT sha256 FROM message_parts WHERE type = 'image'") == [(sha,)]


def test_data_uri_prompt_for_a_text_only_model_is_refused_before_anything_changes(
    env: Env,
) -> None:
    agent = text_only_agent(env)
    env.run(agent, "hello")
    before, requests = list(agent.messages), len(env.sim.requests)
    with pytest.raises(CapabilityError, match="cannot read images"):
        env.engine.run(agent.run(list_prompt("what is it?", data_uri(png((8, 8))))))
    assert agent.messages == before and len(env.sim.requests) == requests
    assert not (env.project / ".boonb" / "attachments").exists()
    assert "tell me a joke" in env.run(agent, "then tell me a joke").content


def test_undecodable_data_uri_in_a_prompt_is_refused_with_what_to_do(env: Env) -> None:
    agent = env.agent(tools=[])
    with pytest.raises(UnreadableImage, match="cannot be decoded.*images=") as caught:
        env.engine.run(agent.run(list_prompt("look", "data:image/png;base64,@@@")))
    assert "part 1" in str(caught.value)
    assert [m["role"] for m in agent.messages] == ["system"] and env.sim.requests == []


def test_resume_with_a_missing_image_fails_the_chat_before_any_turn(env: Env) -> None:
    ref = attach(env, png())
    agent = env.agent(tools=[])
    run_images(env, agent, "look", [ref])
    (env.project / ".boonb" / "attachments" / ref.file_name).unlink()
    saved: list[tuple[str, bool]] = []
    agent.on_boundary = lambda a, final: saved.append((a.state, final))
    turns, requests = sum(isinstance(f, TurnStart) for f in env.frames), len(env.sim.requests)

    with pytest.raises(AttachmentNotFound, match="attach the image again"):
        env.engine.run(agent.resume(note="the kernel restarted"))

    assert agent.state == "failed" and saved == [("failed", True)]
    assert sum(isinstance(f, TurnStart) for f in env.frames) == turns
    assert len(env.sim.requests) == requests


def test_an_image_deleted_during_a_run_ends_it_as_failed(env: Env) -> None:
    ref = attach(env, png())

    @tool
    def tidy_up() -> str:
        """Delete the attached image."""
        (env.project / ".boonb" / "attachments" / ref.file_name).unlink()
        return "deleted"

    env.sim.add_rule(Rule("^look", tool_calls=[{"name": "tidy_up", "arguments": {}}], times=1))
    agent = env.agent(tools=[tidy_up])
    saved: list[tuple[str, bool]] = []
    agent.on_boundary = lambda a, final: saved.append((a.state, final))
    with pytest.raises(AttachmentNotFound, match="attach the image again"):
        run_images(env, agent, "look at this", [ref])
    assert agent.state == "failed" and saved[-1] == ("failed", True)


def test_the_refused_call_rebuilds_the_request_it_sent(env: Env) -> None:
    env.sim.vision = False
    agent = env.agent(tools=[], max_retries=0)
    env.run(agent, "hi")
    ref = attach(env, png())
    with pytest.raises(AgentError, match="refused"):
        run_images(env, agent, "what is this?", [ref])
    env.run(agent, "just text then")
    [(refused,)] = env.rows("SELECT id FROM tool_traces WHERE kind = 'model' AND outcome = 'error'")
    detail = env.store.traces.detail(refused)
    assert detail is not None and detail.request is not None
    users = [m["content"] for m in detail.request.messages if m["role"] == "user"]
    assert users[0] == "hi" and len(users) == 2
    assert users[1][0] == {"type": "text", "text": "what is this?"}
    assert users[1][1]["attachment"] == ref.model_dump(mode="json")
    assert any("refused" in note for note in detail.request.notes)
