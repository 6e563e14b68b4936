-- Tickets, call sessions, ratings and rectifications (issue: queue, dispatch and signaling).

CREATE TABLE tickets (
    id TEXT PRIMARY KEY,
    number TEXT NOT NULL,
    service_day TEXT NOT NULL,               -- YYYY-MM-DD, China Standard Time
    point_id TEXT NOT NULL REFERENCES service_points(id),
    terminal_id TEXT NOT NULL REFERENCES terminals(id),
    item_id TEXT NOT NULL REFERENCES service_items(id),
    line_id TEXT NOT NULL REFERENCES business_lines(id),
    priority TEXT NOT NULL,                  -- normal | elderly | disabled | pregnant
    request_id TEXT NOT NULL,                -- the terminal's idempotency key
    resident_name_enc TEXT,                  -- AES-256-GCM, see pii.rs
    resident_name_masked TEXT,
    id_number_enc TEXT,
    id_number_hash TEXT,                     -- HMAC-SHA256 for matching
    id_number_masked TEXT,
    status TEXT NOT NULL,                    -- waiting | in_call | served | cancelled | abandoned
    close_reason TEXT,
    created_at BIGINT NOT NULL,
    first_answered_at BIGINT,                -- first operator accept: first-response time
    closed_at BIGINT,
    UNIQUE (terminal_id, request_id),
    UNIQUE (point_id, service_day, number)
);
CREATE INDEX tickets_status ON tickets(status, created_at);
CREATE INDEX tickets_id_hash ON tickets(id_number_hash);

CREATE TABLE call_sessions (
    id TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets(id),
    operator_id TEXT NOT NULL REFERENCES users(id),
    terminal_id TEXT NOT NULL REFERENCES terminals(id),
    line_id TEXT NOT NULL REFERENCES business_lines(id),
    status TEXT NOT NULL,                    -- active | held | ended | closed
    started_at BIGINT NOT NULL,              -- operator accepted
    wait_ms BIGINT NOT NULL,                 -- ticket taken (or transferred) until accept
    ended_at BIGINT,
    end_reason TEXT,
    wrapped_at BIGINT,
    outcome TEXT,                            -- completed | accepted_pending_approval | ...
    notes TEXT,
    transfer_note TEXT,                      -- note handed to the next operator
    transferred_from TEXT                    -- previous session of the same ticket
);
CREATE INDEX call_sessions_ticket ON call_sessions(ticket_id);
CREATE INDEX call_sessions_started ON call_sessions(started_at);
CREATE INDEX call_sessions_operator ON call_sessions(operator_id, started_at);

CREATE TABLE session_events (
    id TEXT PRIMARY KEY,
    session_id TEXT,
    ticket_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX session_events_ticket ON session_events(ticket_id, at);

CREATE TABLE ratings (
    session_id TEXT PRIMARY KEY REFERENCES call_sessions(id),
    ticket_id TEXT NOT NULL REFERENCES tickets(id),
    level TEXT NOT NULL,                     -- very_satisfied | satisfied | basic | dissatisfied | very_dissatisfied
    comment TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE rectifications (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL UNIQUE REFERENCES call_sessions(id),
    level TEXT NOT NULL,
    status TEXT NOT NULL,                    -- open | closed
    due_at BIGINT NOT NULL,                  -- 15 working days after the rating
    created_at BIGINT NOT NULL,
    callback_at BIGINT,                      -- 回访
    callback_result TEXT,
    rectification TEXT,                      -- 整改措施
    closed_by TEXT,
    closed_at BIGINT
);
CREATE INDEX rectifications_status ON rectifications(status, due_at);
