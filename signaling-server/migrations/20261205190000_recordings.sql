-- Recording with consent (#17): the resident's answer at the kiosk, kept with the ticket
-- (NULL: not asked, as before this migration; 0: refused; 1: agreed), and recording uploads
-- told apart from scans and forms.
ALTER TABLE tickets ADD COLUMN recording_consent INTEGER;
ALTER TABLE uploads ADD COLUMN recording INTEGER NOT NULL DEFAULT 0;
