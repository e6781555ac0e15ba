"""Background subagents in one process: spawn, the worker's limits, status, result, cancel,
retry, and what other processes ask through the table.

Real parts throughout (see ``tests/background_kit.py``): the simulator over HTTP, a
DuckDB file, the engine thread. A subagent is held inside the ``gate`` tool when a test
needs it running; nothing is synchronised by sleeping.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from boonb import config
from boonb.agent.tools.errors import ToolError
from boonb.background import TaskStateError, UnknownTask
from boonb.frames import ModelCallComplete, TaskUpdate
from boonb.sim import Fault, Rule
from boonb.store import tasks as task_rows
from tests.background_kit import Kit, make_kit


@pytest.fixture
def kit() -> Iterator[Kit]:
    config.update(background_poll_interval_s=0.1)
    yield from make_kit()


def _hold(kit: Kit, prompt: str, gate: str) -> None:
    """A subagent given ``prompt`` calls ``gate`` and waits there until the test opens it."""
    kit.sim.add_rule(Rule(f"^{prompt}", tool_calls=[{"name": "gate", "arguments": {"name": gate}}]))


def _spawned(kit: Kit, prompt: str, **arguments: object) -> uuid.UUID:
    answer = kit.call("spawn_subagent", {"prompt": prompt, **arguments})
    assert answer["status"] == "pending"
    return uuid.UUID(answer["task_id"])


def test_spawn_returns_before_the_first_model_call_and_the_task_then_completes(kit: Kit) -> None:
    # Long enough that the spawn's answer (a commit, not the subagent) cannot trail it.
    kit.sim.add_rule(Rule("^slow question", reply="the slow answer", latency=3.0))

    task_id = _spawned(kit, "slow question", tools=[])

    assert not any(isinstance(f, ModelCallComplete) for f in kit.frames)
    kit.until_state(task_id, "completed")
    ((state, result),) = kit.rows("SELECT state, result FROM tasks WHERE id = ?", task_id)
    assert state == "completed"
    assert json.loads(result)["answer"] == "the slow answer"
    collected = kit.call("subagent_result", {"task_id": str(task_id)})
    assert collected["status"] == "completed"
    assert collected["result"]["answer"] == "the slow answer"
    assert collected["result"]["summary"]["turns"] == 1
    assert kit.rows("SELECT state FROM tasks WHERE id = ?", task_id) == [("read",)]
    again = kit.call("subagent_status", {"task_id": str(task_id)})
    assert again["status"] == "completed"  # read is completed, to the model


def test_five_tasks_with_a_limit_of_two_never_run_more_than_two_at_once(kit: Kit) -> None:
    config.update(background_max_concurrent=2)
    kit.sim.latency = 0.1
    ids = [kit.tasks.spawn(f"job {n}", tools=[]).task_id for n in range(5)]

    for task_id in ids:
        assert kit.tasks.wait(task_id, 60).state == "completed"

    rows = kit.rows("SELECT id, started_at, finished_at FROM tasks")
    events = sorted(
        [(started, 1) for _, started, _ in rows] + [(finished, -1) for _, _, finished in rows]
    )
    running = most = 0
    for _, step in events:  # an end sorts before a start at the same instant
        running += step
        most = max(most, running)
    assert most == 2
    live: set[uuid.UUID] = set()
    most_in_frames = 0
    for frame in kit.frames:
        if isinstance(frame, TaskUpdate):
            (live.add if frame.state == "running" else live.discard)(frame.task_id)
            most_in_frames = max(most_in_frames, len(live))
    assert most_in_frames == 2
    started = [r[0] for r in sorted(rows, key=lambda r: r[1])]
    assert started == ids  # first in, first out


def test_status_of_a_running_task_says_running_with_its_progress(kit: Kit) -> None:
    _hold(kit, "inspect", "g1")
    task_id = _spawned(kit, "inspect the data", tools=["gate"])
    kit.until(
        lambda: (u := kit.latest(task_id)) and u.progress and u.progress.last_tool == "gate",
        "the subagent to call gate",
    )

    status = kit.call("subagent_status", {"task_id": str(task_id)})
    not_ready = kit.call("subagent_result", {"task_id": str(task_id)})

    assert status["status"] == "running"
    assert status["progress"]["turn"] == 1 and status["progress"]["max_turns"] == 10
    assert status["progress"]["last_tool"] == "gate"
    assert status["progress"]["tokens_used"] > 0
    assert "started_at" in status and "finished_at" not in status
    assert isinstance(status["elapsed_s"], float)  # seconds since it started, while it runs
    assert not_ready["status"] == "running" and "result" not in not_ready
    assert "not ready yet" in not_ready["message"] and "last tool gate" in not_ready["message"]
    ((progress,),) = kit.rows("SELECT progress FROM tasks WHERE id = ?", task_id)
    assert json.loads(progress)["last_tool"] == "gate"
    kit.gate("g1").set()
    kit.until_state(task_id, "completed")


def test_result_of_a_pending_task_says_not_ready_and_a_pending_task_can_be_cancelled(
    kit: Kit,
) -> None:
    config.update(background_max_concurrent=1)
    _hold(kit, "first", "g1")
    first = _spawned(kit, "first job", tools=["gate"])
    kit.until_state(first, "running")
    second = _spawned(kit, "second job", tools=[])

    waiting = kit.call("subagent_result", {"task_id": str(second)})
    cancelled = kit.tasks.cancel(second)
    kit.gate("g1").set()
    kit.until_state(first, "completed")

    assert waiting["status"] == "pending" and "result" not in waiting
    assert "not ready yet" in waiting["message"] and "pending" in waiting["message"]
    assert cancelled.state == "cancelled" and cancelled.chat_id is None
    assert kit.rows("SELECT state, started_at FROM tasks WHERE id = ?", second) == [
        ("cancelled", None)
    ]
    assert "running" not in [u.state for u in kit.updates(second)]  # it never started


def test_cancel_of_a_running_task_stops_its_agent_and_closes_its_traces_cancelled(
    kit: Kit,
) -> None:
    _hold(kit, "long", "g1")
    task_id = _spawned(kit, "long job", tools=["gate"])
    running = kit.until(
        lambda: (u := kit.latest(task_id)) and u.progress and u.progress.last_tool and u,
        "the subagent to call gate",
    )

    asked = kit.tasks.cancel(task_id)
    ended = kit.tasks.wait(task_id, 30)

    assert asked.cancel_requested
    assert ended.state == "cancelled" and not ended.cancel_requested
    traces = kit.rows(
        "SELECT kind, outcome FROM tool_traces WHERE chat_id = ? ORDER BY started_at",
        running.chat_id,
    )
    assert traces == [("model", "success"), ("tool", "cancelled")]
    assert kit.rows("SELECT state FROM tasks WHERE id = ?", task_id) == [("cancelled",)]
    with pytest.raises(TaskStateError, match="already ended"):
        kit.tasks.cancel(task_id)


def test_retry_of_a_failed_task_completes_as_a_new_attempt_linked_to_the_old(kit: Kit) -> None:
    kit.sim.inject(Fault.server_error(503), times=5)  # the client's first try and 4 retries
    failed = kit.tasks.spawn("compute the total", tools=[], metadata={"name": "totals"})
    ended = kit.tasks.wait(failed.task_id, 60)
    assert ended.state == "failed" and "503" in (ended.error or "")

    again = kit.tasks.retry(failed.task_id)
    done = kit.tasks.wait(again.task_id, 60)

    assert (again.attempt, again.retry_of, again.title) == (2, failed.task_id, "totals")
    assert done.state == "completed"
    rows = kit.rows("SELECT id, state, attempt, retry_of, payload FROM tasks ORDER BY attempt")
    assert [r[:4] for r in rows] == [
        (failed.task_id, "failed", 1, None),
        (again.task_id, "completed", 2, failed.task_id),
    ]
    assert rows[0][4] == rows[1][4]  # the same payload
    with pytest.raises(TaskStateError, match="only a failed, cancelled or interrupted"):
        kit.tasks.retry(again.task_id)
    # A second retry of the same task (a double click) is refused, naming the first.
    with pytest.raises(TaskStateError, match=f"already retried as task {again.task_id}"):
        kit.tasks.retry(failed.task_id)
    assert len(kit.rows("SELECT id FROM tasks")) == 2


def test_a_task_retried_from_another_kernel_is_not_retried_again_here(kit: Kit) -> None:
    kit.sim.inject(Fault.server_error(503), times=5)
    failed = kit.tasks.spawn("compute the total", tools=[])
    assert kit.tasks.wait(failed.task_id, 60).state == "failed"
    kit.store.writer.flush()
    retry_id, now = uuid.uuid4(), datetime.now(UTC)
    with kit.store.db.connection() as con:  # another kernel's retry, already in the table
        con.execute(
            "INSERT INTO tasks (id, type, state, title, payload, created_at, updated_at, "
            "attempt, retry_of, owner) VALUES (?, 'background_subagent', 'running', 't', ?, "
            "?, ?, 2, ?, 'another kernel')",
            [retry_id, json.dumps({"prompt": "x"}), now, now, failed.task_id],
        )

    with pytest.raises(TaskStateError, match=f"already retried as task {retry_id}"):
        kit.tasks.retry(failed.task_id)


def test_a_cancel_asked_by_another_process_is_carried_out_by_the_owner(kit: Kit) -> None:
    _hold(kit, "watched", "g1")
    task_id = _spawned(kit, "watched job", tools=["gate"])
    kit.until_state(task_id, "running")
    kit.store.writer.flush()

    # What the server or another kernel does: a row change, nothing else.
    assert task_rows.request_cancel(kit.store.db, task_id, now=datetime.now(UTC))

    assert kit.until_state(task_id, "cancelled").error == "cancelled"


def test_a_pending_task_nobody_owns_is_taken_over_and_run(kit: Kit) -> None:
    kit.tasks.ensure_worker()
    task_id = uuid.uuid4()
    now = datetime.now(UTC)
    with kit.store.db.connection() as con:  # a retry another process asked for
        con.execute(
            "INSERT INTO tasks (id, type, state, title, payload, created_at, updated_at, attempt) "
            "VALUES (?, 'background_subagent', 'pending', 'orphan', ?, ?, ?, 1)",
            [task_id, json.dumps({"prompt": "orphan job", "tools": []}), now, now],
        )

    done = kit.until_state(task_id, "completed")

    assert done.owner == kit.tasks.owner
    assert kit.rows("SELECT state, owner FROM tasks WHERE id = ?", task_id) == [
        ("completed", kit.tasks.owner)
    ]


def test_a_task_cancelled_before_any_kernel_took_it_is_cancelled_not_run(kit: Kit) -> None:
    task_id, now = uuid.uuid4(), datetime.now(UTC)
    with kit.store.db.connection() as con:  # a retry asked for elsewhere, then cancelled
        con.execute(
            "INSERT INTO tasks (id, type, state, title, payload, created_at, updated_at, "
            "attempt, cancel_requested) VALUES (?, 'background_subagent', 'pending', 'orphan', "
            "?, ?, ?, 1, true)",
            [task_id, json.dumps({"prompt": "orphan job", "tools": []}), now, now],
        )

    # What the worker's poll does (in any kernel of the project).
    claimed = task_rows.claim_unowned(
        kit.store.db, owner=kit.tasks.owner, pid=kit.tasks.pid, host=kit.tasks.host, now=now
    )

    assert claimed == []
    assert kit.rows("SELECT state, owner FROM tasks WHERE id = ?", task_id) == [
        ("cancelled", None)
    ]


def test_list_shows_the_projects_tasks_newest_first(kit: Kit) -> None:
    ids = [kit.tasks.spawn(f"listed {n}", tools=[]).task_id for n in range(3)]
    for task_id in ids:
        kit.tasks.wait(task_id, 60)

    listed = kit.tasks.list()

    assert [u.task_id for u in listed] == ids[::-1]
    assert all(u.state == "completed" and u.owner == kit.tasks.owner for u in listed)


# Bad inputs: each is an error the model (or the user) can read and act on.


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "tools": ["no_such_tool"]}, "unknown tool 'no_such_tool'"),
        ({"prompt": "x", "budget": 0}, "budget"),
        ({"prompt": "x", "metadata": "not an object"}, "metadata"),
        ({}, "prompt"),
    ],
)
def test_spawn_subagent_refuses_arguments_it_cannot_run(
    kit: Kit, arguments: dict[str, object], expected: str
) -> None:
    with pytest.raises(ToolError, match=expected):
        kit.call("spawn_subagent", arguments)
    assert kit.rows("SELECT count(*) FROM tasks") == [(0,)]


@pytest.mark.parametrize("tool_name", ["subagent_status", "subagent_result"])
@pytest.mark.parametrize(
    ("task_id", "expected"),
    [
        ("not-a-task", "is not a task id"),
        ("", "is not a task id"),
        (str(uuid.UUID(int=7)), "no task 00000000-0000-0000-0000-000000000007 in this project"),
    ],
)
def test_status_and_result_refuse_an_id_that_names_no_task(
    kit: Kit, tool_name: str, task_id: str, expected: str
) -> None:
    with pytest.raises(ToolError, match=expected):
        kit.call(tool_name, {"task_id": task_id})


def test_the_service_refuses_unknown_tasks_and_finished_ones(kit: Kit) -> None:
    with pytest.raises(UnknownTask, match="not a task id"):
        kit.tasks.get("123")
    with pytest.raises(UnknownTask, match="%tasks list"):
        kit.tasks.cancel(uuid.uuid4())
    done = kit.tasks.spawn("quick", tools=[])
    kit.tasks.wait(done.task_id, 60)
    with pytest.raises(TaskStateError, match="nothing to cancel"):
        kit.tasks.cancel(done.task_id)


def test_a_task_names_the_chat_that_spawned_it_in_its_frames_its_row_and_the_list(
    kit: Kit,
) -> None:
    chat, elsewhere = uuid.uuid4(), uuid.uuid4()
    ours = [kit.tasks.spawn(f"Say hello {i}", tools=[], spawned_by=chat).task_id for i in range(2)]
    theirs = kit.tasks.spawn("Say hello", tools=[], spawned_by=elsewhere).task_id
    notebook = kit.tasks.spawn("Say hello", tools=[]).task_id
    for task in [*ours, theirs, notebook]:
        kit.until_state(task, "completed")
    assert {u.parent_chat_id for t in ours for u in kit.updates(t)} == {chat}
    assert kit.latest(notebook).parent_chat_id is None  # type: ignore[union-attr]

    kit.store.writer.flush()
    stored = task_rows.load(kit.store.db, ours[0])
    assert stored is not None and stored.update.parent_chat_id == chat  # as another kernel reads it
    assert [t.task_id for t in kit.tasks.list(spawned_by=chat)] == list(reversed(ours))
    assert [s.update.task_id for s in task_rows.recent(kit.store.db, spawned_by=elsewhere)] == [
        theirs
    ]


def test_a_claimed_task_this_kernel_cannot_read_fails_and_the_rest_of_its_batch_runs(
    kit: Kit,
) -> None:
    bad, good, now = uuid.uuid4(), uuid.uuid4(), datetime.now(UTC)
    with kit.store.db.connection() as con:  # two retries asked for elsewhere, one unreadable
        for task_id, payload, at in [  # the unreadable one first in its batch
            (bad, {"prompt": "odd job", "tools": [], "colour": "blue"}, now - timedelta(1)),
            (good, {"prompt": "orphan job", "tools": []}, now),
        ]:
            con.execute(
                "INSERT INTO tasks (id, type, state, title, payload, created_at, updated_at, "
                "attempt) VALUES (?, 'background_subagent', 'pending', 't', ?, ?, ?, 1)",
                [task_id, json.dumps(payload), at, at],
            )
    kit.tasks.ensure_worker()

    assert kit.until_state(good, "completed").owner == kit.tasks.owner
    ((state, error),) = kit.rows("SELECT state, error FROM tasks WHERE id = ?", bad)
    assert state == "failed" and "cannot read the task's payload" in error
