-- Materials (scanned documents, forms) and remote printing (issue: materials store and
-- remote printing). Object contents live in the object store, encrypted; see materials/.

-- Encrypted objects, content-addressed: `name` is a keyed hash of the plaintext's SHA-256.
CREATE TABLE material_objects (
    name TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,                    -- hex, of the plaintext
    size BIGINT NOT NULL,                    -- plaintext bytes
    segment_size BIGINT NOT NULL,            -- plaintext bytes per AES-GCM segment
    wrapped_key TEXT NOT NULL,               -- data key wrapped by the master key (pii.rs)
    thumb_name TEXT,                         -- encrypted JPEG thumbnail object, if any
    thumb_size BIGINT,
    thumb_wrapped_key TEXT,
    created_at BIGINT NOT NULL
);

-- tus uploads in progress; the partial file (encrypted, AES-CTR) is <data-dir>/uploads/<id>.
CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    created_by TEXT NOT NULL,
    session_id TEXT NOT NULL REFERENCES call_sessions(id),
    slot_id TEXT REFERENCES item_materials(id),
    filename TEXT NOT NULL,
    length BIGINT NOT NULL,
    received BIGINT NOT NULL,                -- the acknowledged offset
    sha256 TEXT NOT NULL,                    -- declared, hex
    wrapped_key TEXT NOT NULL,               -- key of the partial file
    material_id TEXT,                        -- set once complete
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX uploads_expires ON uploads(expires_at);

CREATE TABLE materials (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES call_sessions(id),
    ticket_id TEXT NOT NULL REFERENCES tickets(id),
    item_id TEXT NOT NULL REFERENCES service_items(id),
    slot_id TEXT REFERENCES item_materials(id),
    source TEXT NOT NULL,                    -- scan (terminal) | form (operator)
    filename TEXT NOT NULL,                  -- sanitised for display; metadata only
    content_type TEXT NOT NULL,              -- decided by content
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    object_name TEXT REFERENCES material_objects(name),  -- NULL once purged
    status TEXT NOT NULL,                    -- uploaded | viewed | accepted | rejected
    reject_reason TEXT,
    uploaded_by TEXT NOT NULL,
    reviewed_by TEXT,
    reviewed_at BIGINT,
    archived_at BIGINT,                      -- the session ended
    purged_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX materials_session ON materials(session_id, created_at);
CREATE INDEX materials_object ON materials(object_name);
CREATE INDEX materials_archived ON materials(archived_at);

CREATE TABLE print_jobs (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES call_sessions(id),
    point_id TEXT NOT NULL REFERENCES service_points(id),
    terminal_id TEXT NOT NULL REFERENCES terminals(id),
    operator_id TEXT NOT NULL REFERENCES users(id),
    material_id TEXT NOT NULL REFERENCES materials(id),
    idempotency_key TEXT NOT NULL,
    copies BIGINT NOT NULL,
    state TEXT NOT NULL,                     -- pending | claimed | queued | printing | completed | failed | cancelled | expired
    reason TEXT,                             -- printer-state-reason on failure (e.g. media-empty)
    claim_token_hash TEXT,
    claimed_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    UNIQUE (operator_id, idempotency_key)
);
CREATE INDEX print_jobs_terminal ON print_jobs(terminal_id, state);
CREATE INDEX print_jobs_session ON print_jobs(session_id);
