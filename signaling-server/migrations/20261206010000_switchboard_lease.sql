-- Cluster mode (#12): one switchboard authority at a time. The node holding this lease runs the
-- switchboard; `epoch` grows with every new holder and is the fencing token: every write of the
-- switchboard checks, in its own transaction, that the lease still carries its epoch (a node
-- that lost the lease cannot write). Times are the database's clock (Unix ms). Single-node mode
-- (SQLite) never uses it.
CREATE TABLE switchboard_lease (
    id INTEGER PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
