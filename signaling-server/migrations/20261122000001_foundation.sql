-- Bangban foundation schema. Portable between SQLite and PostgreSQL: only TEXT, BIGINT
-- and DOUBLE PRECISION columns (flags are BIGINT 0/1); times are unix milliseconds; IDs are UUID text.

CREATE TABLE service_points (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    street TEXT NOT NULL,
    committee TEXT NOT NULL,
    kind TEXT NOT NULL,
    address TEXT NOT NULL,
    longitude DOUBLE PRECISION NOT NULL,
    latitude DOUBLE PRECISION NOT NULL,
    opening_hours TEXT NOT NULL,
    inspector_name TEXT NOT NULL,
    inspector_phone TEXT NOT NULL,
    status TEXT NOT NULL,
    closed_reason TEXT,
    closed_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL
);

CREATE TABLE service_point_history (
    id TEXT PRIMARY KEY,
    point_id TEXT NOT NULL REFERENCES service_points(id),
    version BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    actor_id TEXT,
    action TEXT NOT NULL,
    snapshot TEXT NOT NULL
);
CREATE INDEX service_point_history_point ON service_point_history(point_id, version);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    point_id TEXT REFERENCES service_points(id),
    password_hash TEXT NOT NULL,
    active BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    password_changed_at BIGINT NOT NULL
);

CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY,
    family_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    token_hash TEXT NOT NULL UNIQUE,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens(user_id);

CREATE TABLE business_lines (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    sort_order BIGINT NOT NULL,
    active BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE service_items (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    line_id TEXT NOT NULL REFERENCES business_lines(id),
    remote_allowed BIGINT NOT NULL,
    description TEXT NOT NULL,
    active BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX service_items_line ON service_items(line_id);

CREATE TABLE item_materials (
    id TEXT PRIMARY KEY,
    item_id TEXT NOT NULL REFERENCES service_items(id),
    position BIGINT NOT NULL,
    name TEXT NOT NULL,
    transfer TEXT NOT NULL,
    required BIGINT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX item_materials_item ON item_materials(item_id, position);

CREATE TABLE operator_skills (
    user_id TEXT NOT NULL REFERENCES users(id),
    line_id TEXT NOT NULL REFERENCES business_lines(id),
    PRIMARY KEY (user_id, line_id)
);

CREATE TABLE terminals (
    id TEXT PRIMARY KEY,
    point_id TEXT NOT NULL REFERENCES service_points(id),
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    enrollment_code_hash TEXT,
    enrollment_expires_at BIGINT,
    credential_hash TEXT UNIQUE,
    enrolled_at BIGINT,
    revoked_at BIGINT,
    revoked_reason TEXT,
    last_seen_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX terminals_point ON terminals(point_id);
CREATE UNIQUE INDEX terminals_enrollment_code ON terminals(enrollment_code_hash);

CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    at BIGINT NOT NULL,
    actor_id TEXT,
    actor_name TEXT NOT NULL,
    source_ip TEXT,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE INDEX audit_log_target ON audit_log(target_type, target_id);
