-- Appointments (预约, issue 16 item 3): a resident, helped by committee staff at the kiosk,
-- books a slot of an item's line at a point; slots come from the line's duty roster, the
-- point's opening hours and the working-day calendar (appointments.rs). The name and phone are
-- personal data: encrypted bound to the row (pii.rs, contexts appointment:<id>:name and
-- appointment:<id>:phone), shown masked. Checked in at the kiosk by a six-digit code unique per
-- point and day; the ticket taken then is served ahead of walk-ins from the slot start.
CREATE TABLE appointments (
    id TEXT PRIMARY KEY,
    point_id TEXT NOT NULL REFERENCES service_points(id),
    item_id TEXT NOT NULL REFERENCES service_items(id),
    line_id TEXT NOT NULL REFERENCES business_lines(id),
    service_day TEXT NOT NULL,               -- YYYY-MM-DD (China time) of the slot
    slot_start BIGINT NOT NULL,
    slot_end BIGINT NOT NULL,
    name_enc TEXT NOT NULL,
    name_masked TEXT NOT NULL,
    phone_enc TEXT NOT NULL,
    phone_masked TEXT NOT NULL,
    consent_text TEXT NOT NULL,
    consent_at BIGINT NOT NULL,
    state TEXT NOT NULL,                     -- booked | checked_in | served | no_show | cancelled
    code TEXT NOT NULL,
    ticket_id TEXT REFERENCES tickets(id),
    booked_by TEXT NOT NULL REFERENCES users(id),
    booked_by_name TEXT NOT NULL,
    terminal_id TEXT REFERENCES terminals(id),
    created_at BIGINT NOT NULL,
    checked_in_at BIGINT,
    closed_at BIGINT,
    reminded_at BIGINT                       -- the day-before reminder queued (outbox)
);
CREATE UNIQUE INDEX appointments_code ON appointments(point_id, service_day, code);
CREATE INDEX appointments_slot ON appointments(point_id, line_id, slot_start);
CREATE INDEX appointments_state ON appointments(state, slot_end);
