-- Cases that outlive the call (issue 14): the working-day calendar, points' structured opening
-- hours, work orders (工单) and their history.

-- China's statutory holidays and make-up working days (调休), one row per day that differs from
-- the ordinary week (Monday–Friday working, Saturday and Sunday off). Seeded from
-- signaling-server/data/cn-calendar-2025-2026.csv (State Council notices); admins edit a year
-- through /api/v1/calendar/{year}.
CREATE TABLE calendar_days (
    day TEXT PRIMARY KEY,                    -- YYYY-MM-DD, China Standard Time
    kind TEXT NOT NULL,                      -- holiday | workday
    festival TEXT NOT NULL,
    festival_zh TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT
);

INSERT INTO calendar_days (day, kind, festival, festival_zh, updated_at, updated_by) VALUES
('2025-01-01', 'holiday', 'New Year''s Day', '元旦', 0, NULL),
('2025-01-26', 'workday', 'Spring Festival', '春节', 0, NULL),
('2025-01-28', 'holiday', 'Spring Festival', '春节', 0, NULL),
('2025-01-29', 'holiday', 'Spring Festival', '春节', 0, NULL),
('2025-01-30', 'holiday', 'Spring Festival', '春节', 0, NULL),
('2025-01-31', 'holiday', 'Spring Festival', '春节', 0, NULL),
('2025-02-01', 'holiday', 'Spring Festival', '春节', 0, NULL),
('2025-02-02', 'holiday', 'Spring Festival', '春节', 0, NULL),
('2025-02-03', 'holiday', 'Spring Festival', '春节', 0, NULL),
('2025-02-04', 'holiday', 'Spring Festival', '春节', 0, NULL),
('2025-02-08', 'workday', 'Spring Festival', '春节', 0, NULL),
('2025-04-04', 'holiday', 'Tomb-sweeping Day', '清明节', 0, NULL),
('2025-04-05', 'holiday', 'Tomb-sweeping Day', '清明节', 0, NULL),
('2025-04-06', 'holiday', 'Tomb-sweeping Day', '清明节', 0, NULL),
('2025-04-27', 'workday', 'Labour Day', '劳动节', 0, NULL),
('2025-05-01', 'holiday', 'Labour Day', '劳动节', 0, NULL),
('2025-05-02', 'holiday', 'Labour Day', '劳动节', 0, NULL),
('2025-05-03', 'holiday', 'Labour Day', '劳动节', 0, NULL),
('2025-05-04', 'holiday', 'Labour Day', '劳动节', 0, NULL),
('2025-05-05', 'holiday', 'Labour Day', '劳动节', 0, NULL),
('2025-05-31', 'holiday', 'Dragon Boat Festival', '端午节', 0, NULL),
('2025-06-01', 'holiday', 'Dragon Boat Festival', '端午节', 0, NULL),
('2025-06-02', 'holiday', 'Dragon Boat Festival', '端午节', 0, NULL),
('2025-09-28', 'workday', 'National Day', '国庆节', 0, NULL),
('2025-10-01', 'holiday', 'National Day', '国庆节', 0, NULL),
('2025-10-02', 'holiday', 'National Day', '国庆节', 0, NULL),
('2025-10-03', 'holiday', 'National Day', '国庆节', 0, NULL),
('2025-10-04', 'holiday', 'National Day', '国庆节', 0, NULL),
('2025-10-05', 'holiday', 'National Day', '国庆节', 0, NULL),
('2025-10-06', 'holiday', 'Mid-autumn Festival', '中秋节', 0, NULL),
('2025-10-07', 'holiday', 'National Day', '国庆节', 0, NULL),
('2025-10-08', 'holiday', 'National Day', '国庆节', 0, NULL),
('2025-10-11', 'workday', 'National Day', '国庆节', 0, NULL),
('2026-01-01', 'holiday', 'New Year''s Day', '元旦', 0, NULL),
('2026-01-02', 'holiday', 'New Year''s Day', '元旦', 0, NULL),
('2026-01-03', 'holiday', 'New Year''s Day', '元旦', 0, NULL),
('2026-01-04', 'workday', 'New Year''s Day', '元旦', 0, NULL),
('2026-02-14', 'workday', 'Spring Festival', '春节', 0, NULL),
('2026-02-15', 'holiday', 'Spring Festival', '春节', 0, NULL),
('2026-02-16', 'holiday', 'Spring Festival', '春节', 0, NULL),
('2026-02-17', 'holiday', 'Spring Festival', '春节', 0, NULL),
('2026-02-18', 'holiday', 'Spring Festival', '春节', 0, NULL),
('2026-02-19', 'holiday', 'Spring Festival', '春节', 0, NULL),
('2026-02-20', 'holiday', 'Spring Festival', '春节', 0, NULL),
('2026-02-21', 'holiday', 'Spring Festival', '春节', 0, NULL),
('2026-02-22', 'holiday', 'Spring Festival', '春节', 0, NULL),
('2026-02-23', 'holiday', 'Spring Festival', '春节', 0, NULL),
('2026-02-28', 'workday', 'Spring Festival', '春节', 0, NULL),
('2026-04-04', 'holiday', 'Tomb-sweeping Day', '清明节', 0, NULL),
('2026-04-05', 'holiday', 'Tomb-sweeping Day', '清明节', 0, NULL),
('2026-04-06', 'holiday', 'Tomb-sweeping Day', '清明节', 0, NULL),
('2026-05-01', 'holiday', 'Labour Day', '劳动节', 0, NULL),
('2026-05-02', 'holiday', 'Labour Day', '劳动节', 0, NULL),
('2026-05-03', 'holiday', 'Labour Day', '劳动节', 0, NULL),
('2026-05-04', 'holiday', 'Labour Day', '劳动节', 0, NULL),
('2026-05-05', 'holiday', 'Labour Day', '劳动节', 0, NULL),
('2026-05-09', 'workday', 'Labour Day', '劳动节', 0, NULL),
('2026-06-19', 'holiday', 'Dragon Boat Festival', '端午节', 0, NULL),
('2026-06-20', 'holiday', 'Dragon Boat Festival', '端午节', 0, NULL),
('2026-06-21', 'holiday', 'Dragon Boat Festival', '端午节', 0, NULL),
('2026-09-20', 'workday', 'National Day', '国庆节', 0, NULL),
('2026-09-25', 'holiday', 'Mid-autumn Festival', '中秋节', 0, NULL),
('2026-09-26', 'holiday', 'Mid-autumn Festival', '中秋节', 0, NULL),
('2026-09-27', 'holiday', 'Mid-autumn Festival', '中秋节', 0, NULL),
('2026-10-01', 'holiday', 'National Day', '国庆节', 0, NULL),
('2026-10-02', 'holiday', 'National Day', '国庆节', 0, NULL),
('2026-10-03', 'holiday', 'National Day', '国庆节', 0, NULL),
('2026-10-04', 'holiday', 'National Day', '国庆节', 0, NULL),
('2026-10-05', 'holiday', 'National Day', '国庆节', 0, NULL),
('2026-10-06', 'holiday', 'National Day', '国庆节', 0, NULL),
('2026-10-07', 'holiday', 'National Day', '国庆节', 0, NULL),
('2026-10-10', 'workday', 'National Day', '国庆节', 0, NULL);

-- A point's opening hours as structured data (JSON of shared::cases::OpeningHours); the free
-- text stays in service_points.opening_hours and is shown beside it.
CREATE TABLE point_opening_hours (
    point_id TEXT PRIMARY KEY REFERENCES service_points(id),
    schedule TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT
);

-- Work orders (工单): states accepted | classified | transferred | completed | closed.
CREATE TABLE work_orders (
    id TEXT PRIMARY KEY,
    number TEXT NOT NULL UNIQUE,             -- GD + China date + sequence
    source TEXT NOT NULL,                    -- wrap_up | point | hotline_12345 | suggestion_box | good_bad_review
    source_ref TEXT,
    session_id TEXT UNIQUE REFERENCES call_sessions(id),
    point_id TEXT NOT NULL REFERENCES service_points(id),
    item_id TEXT NOT NULL REFERENCES service_items(id),
    line_id TEXT NOT NULL REFERENCES business_lines(id),
    resident_masked TEXT,
    phone_enc TEXT,                          -- AES-256-GCM bound to the order (pii.rs)
    phone_masked TEXT,
    consent_text TEXT,                       -- what the resident agreed to
    consent_at BIGINT,
    consent_by TEXT REFERENCES users(id),
    summary TEXT NOT NULL,
    case_number TEXT,                        -- 办件编号
    category TEXT,
    department TEXT,
    assignee_id TEXT REFERENCES users(id),
    state TEXT NOT NULL,
    suspended_reason TEXT,
    deadline TEXT NOT NULL,                  -- JSON of shared::cases::DeadlineClass
    clock_start BIGINT NOT NULL,
    pauses TEXT NOT NULL,                    -- JSON [[from, to|null], ...]
    due_at BIGINT NOT NULL,                  -- as of the last change (open pauses until then)
    escalated BIGINT NOT NULL,               -- 0 none | 1 near due | 2 overdue
    outstanding_materials TEXT NOT NULL,     -- JSON array of names
    created_by TEXT REFERENCES users(id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    closed_at BIGINT,
    version BIGINT NOT NULL
);
CREATE INDEX work_orders_state ON work_orders(state, due_at);
CREATE INDEX work_orders_point ON work_orders(point_id, created_at);

CREATE TABLE work_order_events (
    order_id TEXT NOT NULL REFERENCES work_orders(id),
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor_id TEXT REFERENCES users(id),
    action TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    note TEXT,
    PRIMARY KEY (order_id, seq)
);

-- The notification outbox (see cases/outbox.rs): channel webhook | console; status pending |
-- delivered | dead | skipped. No personal data: the phone number is read at delivery time.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    topic TEXT NOT NULL,
    order_id TEXT REFERENCES work_orders(id),
    recipient TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error TEXT,
    done_at BIGINT                           -- console tasks: marked done
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX outbox_console ON outbox(channel, recipient, created_at);

CREATE TABLE outbox_attempts (
    id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES outbox(id),
    attempt BIGINT NOT NULL,
    at BIGINT NOT NULL,
    status_code BIGINT,
    error TEXT,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX outbox_attempts_message ON outbox_attempts(message_id, attempt);

CREATE TABLE outbox_webhook (
    id BIGINT PRIMARY KEY,                   -- always 1
    url TEXT NOT NULL,
    secret_enc TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    retry_base_ms BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Call-backs (回访): kind rectification | order | good_rating; status open | done.
CREATE TABLE callbacks (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    source_ref TEXT NOT NULL UNIQUE,         -- rectification:<id> | order:<id>:<seq> | rating:<session>
    order_id TEXT REFERENCES work_orders(id),
    session_id TEXT REFERENCES call_sessions(id),
    status TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    result TEXT,
    satisfied BIGINT,
    done_by TEXT REFERENCES users(id),
    done_at BIGINT
);
CREATE INDEX callbacks_status ON callbacks(status, due_at);

-- Good ratings already considered for sampling (once each).
CREATE TABLE callback_samples (
    session_id TEXT PRIMARY KEY,
    decided_at BIGINT NOT NULL
);

CREATE TABLE callback_settings (
    id BIGINT PRIMARY KEY,                   -- always 1
    good_share_pct BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Home-visit requests (上门办): requested | approved | refused | scheduled | done | rated.
CREATE TABLE home_visits (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,                    -- staff | hotline_12345 | referral
    point_id TEXT NOT NULL REFERENCES service_points(id),
    item_id TEXT REFERENCES service_items(id),
    situation TEXT NOT NULL,
    address TEXT NOT NULL,
    state TEXT NOT NULL,
    decision_reason TEXT,
    decided_by TEXT REFERENCES users(id),
    decided_at BIGINT,
    scheduled_at BIGINT,
    assignees TEXT NOT NULL,                 -- JSON array of names
    materials TEXT NOT NULL,                 -- JSON array: what to bring
    outcome TEXT,
    rating TEXT,
    rating_comment TEXT,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX home_visits_point ON home_visits(point_id, created_at);

-- The two lists (两张清单): status open (问题清单) | rectifying (整改清单) | closed (销号).
CREATE TABLE problems (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,                    -- bad_rating | overdue_order | inspection | spot_check
    source_ref TEXT UNIQUE,                  -- rectification:<id> | order:<id>
    description TEXT NOT NULL,
    owner TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    complex_reason TEXT,
    status TEXT NOT NULL,
    measures TEXT,
    evidence TEXT,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    closed_at BIGINT
);
CREATE INDEX problems_status ON problems(status, due_at);
