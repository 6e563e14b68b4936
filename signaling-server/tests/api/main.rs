//! Integration tests of the server's HTTP surface, one file per scenario. They run against
//! SQLite by default and against PostgreSQL with `BANGBAN_TEST_DB=postgres`.

mod helpers;

mod audit;
mod auth;
mod calendar;
mod cases_callbacks;
mod cases_done_when;
mod cases_home_visits;
mod cases_kiosk_contact;
mod cases_orders;
mod cases_outbox;
mod cases_problems;
mod cases_reports;
mod catalog;
mod health;
mod hostile;
mod inspections;
mod jwt_attacks;
mod materials;
mod materials_fixture;
mod materials_s3;
mod matrix;
mod openapi_contract;
mod point_today;
mod points;
mod print_jobs;
mod rectifications;
mod revocation;
mod stats;
mod terminal_health;
mod terminals;
mod throttle;
mod ws_availability;
mod ws_board_pick;
mod ws_client;
mod ws_flow;
mod ws_ice;
mod ws_limits;
mod ws_load;
mod ws_reconnect;
mod ws_ring;
mod ws_rules;
mod ws_scan_request;
mod ws_slow;
mod ws_staff;
