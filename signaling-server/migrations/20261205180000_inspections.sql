-- Inspections (巡检, issue 16): one schedule per service point, the records of inspections done
-- (a checklist of nine items, each passed or failed with a note) and their photos. Photos are
-- stored like materials: encrypted, content-addressed objects in `material_objects` (the
-- retention purge keeps an object while a photo names it). See src/inspections.rs.
CREATE TABLE inspection_schedules (
    point_id TEXT PRIMARY KEY REFERENCES service_points(id),
    frequency TEXT NOT NULL,                 -- weekly | biweekly | monthly
    weekday BIGINT NOT NULL,                 -- ISO weekday 1 = Monday … 7 = Sunday
    starts_on TEXT NOT NULL,                 -- YYYY-MM-DD (China time): the first scheduled day
    grace_working_days BIGINT NOT NULL,      -- working days after the due day before it is overdue
    inspector_account_id TEXT REFERENCES users(id),  -- optional account of the point's inspector
    flagged_due_on TEXT,                     -- the missed due day last flagged as overdue
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT
);

CREATE TABLE inspection_records (
    id TEXT PRIMARY KEY,
    point_id TEXT NOT NULL REFERENCES service_points(id),
    inspected_at BIGINT NOT NULL,
    inspector_id TEXT NOT NULL REFERENCES users(id),
    inspector_name TEXT NOT NULL,
    checklist TEXT NOT NULL,                 -- JSON: [{"item", "ok", "note"}], the nine items
    failed BIGINT NOT NULL,                  -- how many items failed
    note TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX inspection_records_point ON inspection_records(point_id, inspected_at);

CREATE TABLE inspection_photos (
    id TEXT PRIMARY KEY,
    record_id TEXT NOT NULL REFERENCES inspection_records(id),
    object_name TEXT NOT NULL REFERENCES material_objects(name),
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    uploaded_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX inspection_photos_record ON inspection_photos(record_id, created_at);
CREATE INDEX inspection_photos_object ON inspection_photos(object_name);
