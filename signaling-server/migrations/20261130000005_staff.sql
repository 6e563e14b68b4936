-- The committee staff member who was signed in at the terminal when the ticket was taken
-- (居委会工作人员协助取号), and their name as it was then.
ALTER TABLE tickets ADD COLUMN assisted_by TEXT REFERENCES users(id);
ALTER TABLE tickets ADD COLUMN assisted_by_name TEXT;
