-- boonb's DuckDB schema, version 1. Applied on every open; every statement is idempotent.
-- Never edit it: a change is a new step in migrations.py (which also lists what
-- later versions added, e.g. tool_traces.root_id and kinds workflow | phase | agent).
-- Token convention (all tables): input_tokens includes cache-read tokens; cache_tokens is
-- the cache-read (hit) part; cache_miss_tokens = input_tokens - cache_tokens;
-- reasoning_tokens is inside output_tokens; tokens_used = input_tokens + output_tokens.

CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

-- Per-database facts, e.g. the key that signs pagination cursors.
CREATE TABLE IF NOT EXISTS boonb_meta (
    key    VARCHAR PRIMARY KEY,
    value  VARCHAR NOT NULL
);

-- One per kernel session.
CREATE TABLE IF NOT EXISTS sessions (
    id          UUID PRIMARY KEY,
    project     VARCHAR,
    kernel_pid  INTEGER,
    hostname    VARCHAR,
    started_at  TIMESTAMPTZ NOT NULL,
    ended_at    TIMESTAMPTZ
);

-- One per agent conversation.
CREATE TABLE IF NOT EXISTS chats (
    id               UUID PRIMARY KEY,
    session_id       UUID,
    title            VARCHAR,
    provider         VARCHAR,
    model            VARCHAR,
    agent_id         VARCHAR,
    workflow_run_id  UUID,
    created_at       TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS messages (
    id           UUID PRIMARY KEY,
    chat_id      UUID NOT NULL,
    role         VARCHAR NOT NULL,   -- system | user | assistant | tool
    turn_number  INTEGER NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS message_parts (
    id          UUID PRIMARY KEY,
    message_id  UUID NOT NULL,
    position    INTEGER NOT NULL,
    type        VARCHAR NOT NULL,    -- text | image | tool_call | tool_result
    text        VARCHAR,
    url         VARCHAR,
    mime        VARCHAR,
    size_bytes  BIGINT,
    sha256      VARCHAR,
    data        JSON
);

CREATE TABLE IF NOT EXISTS tool_traces (
    id                 UUID PRIMARY KEY,
    session_id         UUID NOT NULL,
    chat_id            UUID NOT NULL,
    turn_number        INTEGER NOT NULL,
    kind               VARCHAR NOT NULL,  -- model | tool
    tool_name          VARCHAR NOT NULL,
    call_id            VARCHAR,
    agent_id           VARCHAR,
    workflow_run_id    UUID,
    parent_id          UUID,
    input              JSON,
    output             JSON,
    started_at         TIMESTAMPTZ NOT NULL,
    finished_at        TIMESTAMPTZ,
    latency_ms         DOUBLE,
    input_tokens       INTEGER NOT NULL DEFAULT 0,
    output_tokens      INTEGER NOT NULL DEFAULT 0,
    cache_tokens       INTEGER NOT NULL DEFAULT 0,
    cache_miss_tokens  INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
    tokens_used        INTEGER NOT NULL DEFAULT 0,
    cost_usd           DOUBLE,
    error              VARCHAR,
    outcome            VARCHAR NOT NULL   -- success | error | cancelled
);
CREATE INDEX IF NOT EXISTS tool_traces_chat_order ON tool_traces (chat_id, turn_number, started_at);
CREATE INDEX IF NOT EXISTS tool_traces_session ON tool_traces (session_id);

-- Cache hits per model call and prompt segment (system | tools | history | attachments).
CREATE TABLE IF NOT EXISTS cache_stats (
    trace_id     UUID NOT NULL,
    chat_id      UUID NOT NULL,
    turn_number  INTEGER NOT NULL,
    segment      VARCHAR NOT NULL,
    tokens       INTEGER NOT NULL,
    hit_tokens   INTEGER NOT NULL,
    miss_tokens  INTEGER NOT NULL,
    hash         VARCHAR NOT NULL,  -- the segment's content
    prefix_hash  VARCHAR,           -- its part already sent in the chat's previous model call
    PRIMARY KEY (trace_id, segment)
);

CREATE TABLE IF NOT EXISTS agent_sessions (
    id           UUID PRIMARY KEY,
    chat_id      UUID NOT NULL,
    session_id   UUID,
    state        VARCHAR NOT NULL,  -- in_progress | awaiting_input | completed | failed | interrupted | cancelled
    snapshot     JSON NOT NULL,
    kernel_pid   INTEGER,
    last_update  TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS tasks (
    id           UUID PRIMARY KEY,
    type         VARCHAR NOT NULL,  -- background_subagent, ...
    state        VARCHAR NOT NULL,  -- pending | running | completed | failed | cancelled | interrupted | read
    payload      JSON,
    result       JSON,
    error        VARCHAR,
    progress     DOUBLE,
    owner        VARCHAR,
    created_at   TIMESTAMPTZ NOT NULL,
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS workflow_runs (
    id           UUID PRIMARY KEY,
    workflow     VARCHAR NOT NULL,
    source       VARCHAR,
    args         JSON,
    state        VARCHAR NOT NULL,  -- pending | running | completed | failed | cancelled | interrupted
    result       JSON,
    error        VARCHAR,
    tokens_used  INTEGER NOT NULL DEFAULT 0,
    budget       INTEGER,
    session_id   UUID,
    kernel_pid   INTEGER,
    created_at   TIMESTAMPTZ NOT NULL,
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS workflow_cache (
    hash        VARCHAR PRIMARY KEY,  -- SHA-256 over the canonical JSON of an agent's inputs
    agent_id    VARCHAR,
    result      JSON,
    created_at  TIMESTAMPTZ NOT NULL
);

INSERT INTO schema_version (version) VALUES (1) ON CONFLICT DO NOTHING;
