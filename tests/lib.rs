//! Only the `e2e` test binary lives here (tests/tests/e2e).
