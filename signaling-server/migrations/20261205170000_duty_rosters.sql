-- Operators' duty rosters per business line (issue 16): a weekly schedule of when the line is
-- staffed at the acceptance center (JSON of shared::cases::OpeningHours: weekday ranges, the
-- holiday rule, closures). It only feeds "next staffed time" on the kiosk when nobody serves
-- the line now; who serves it now comes from the switchboard.
CREATE TABLE line_rosters (
    line_id TEXT PRIMARY KEY REFERENCES business_lines(id),
    schedule TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT
);
