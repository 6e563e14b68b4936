-- A call recording in parts (#17): part 1 is the terminal's camera and microphone, part 2 the
-- operator's camera and voice, written by one pipeline (same clock, same start) so a browser
-- plays both side by side (a <video> plays only a file's first video track). `uploads.recording`
-- now holds the part number (0: not a recording; 1, 2); a recording stored before this migration
-- is one file of four tracks and stays part 1 (NULL). The terminal reports the duration it
-- measured (ms, NULL when unknown).
ALTER TABLE uploads ADD COLUMN duration_ms BIGINT;
ALTER TABLE materials ADD COLUMN recording_part INTEGER;
ALTER TABLE materials ADD COLUMN duration_ms BIGINT;
