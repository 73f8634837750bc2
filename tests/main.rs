//! The integration suites, one binary: each module starts real servers (in-process or as
//! processes) and talks HTTP to them, on the backend `INTAKE_TEST_BACKEND` names (SQLite by
//! default). One binary links once and shares one set of fixtures (`common`).

mod common;

mod api_access;
mod cli;
mod crash;
mod dialects;
mod faults;
mod imports;
mod live;
mod malformed;
mod multiprocess;
mod naughty;
mod one_step;
mod postgres;
mod review_regressions;
mod rollback;
mod smoke;
mod sources;
mod tls;
mod two_step;
mod values;
