-- Terminal health: the last heartbeat of each terminal and the alarms raised from it
-- (offline after the threshold without contact, printer faults). Portable SQL only.

CREATE TABLE terminal_health (
    terminal_id TEXT PRIMARY KEY REFERENCES terminals(id),
    reported_at BIGINT NOT NULL,
    -- The validated TerminalHealthReport as JSON (≤ 16 KiB).
    report TEXT NOT NULL
);

CREATE TABLE terminal_alarms (
    id TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL REFERENCES terminals(id),
    -- offline | printer_fault
    kind TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    cleared_at BIGINT,
    detail TEXT NOT NULL
);
-- At most one open alarm of a kind per terminal: raising twice is a no-op.
CREATE UNIQUE INDEX terminal_alarms_open ON terminal_alarms(terminal_id, kind) WHERE cleared_at IS NULL;
CREATE INDEX terminal_alarms_opened ON terminal_alarms(opened_at);
