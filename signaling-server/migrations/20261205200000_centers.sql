-- Acceptance centers (受理中心, issue 16 item 6). A center owns streets and, through them, the
-- service points on those streets (service_points.street); a street belongs to at most one
-- center. Operators and supervisors may belong to a center (users.center_id): dispatch serves
-- a point's tickets by its own center's operators first and district-wide after the overflow
-- wait. Items may be offered only at some streets' points (item_streets; no rows = everywhere).
CREATE TABLE centers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE center_streets (
    street TEXT PRIMARY KEY,
    center_id TEXT NOT NULL REFERENCES centers(id)
);
CREATE INDEX center_streets_center ON center_streets(center_id);

ALTER TABLE users ADD COLUMN center_id TEXT REFERENCES centers(id);

CREATE TABLE item_streets (
    item_id TEXT NOT NULL REFERENCES service_items(id),
    street TEXT NOT NULL,
    PRIMARY KEY (item_id, street)
);
