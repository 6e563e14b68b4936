-- The resident's phone number recorded at the kiosk (issue 14): committee staff signed in at the
-- terminal record it for the terminal's ticket after the resident confirmed the consent text on
-- screen. The work order opened from the ticket's call (then or later) receives it. Encrypted
-- bound to the ticket (pii.rs), shown masked; erased with the other contacts after the
-- retention period.
CREATE TABLE ticket_contacts (
    ticket_id TEXT PRIMARY KEY REFERENCES tickets(id),
    phone_enc TEXT NOT NULL,                 -- AES-256-GCM, context ticket:<id>:phone
    phone_masked TEXT NOT NULL,
    consent_text TEXT NOT NULL,              -- what the resident agreed to
    consent_at BIGINT NOT NULL,
    consent_by TEXT NOT NULL REFERENCES users(id),
    terminal_id TEXT NOT NULL REFERENCES terminals(id)
);
CREATE INDEX ticket_contacts_consent ON ticket_contacts(consent_at);
