//! The one integration-test binary: every integration test is a module under
//! `tests/it/`, sharing the throwaway servers of `support` (one PostgreSQL
//! and one MariaDB per process, a fresh database per test).
//!
//! Run with `cargo test --test main`; the servers are started on first use
//! and removed when the process exits.

mod it;
mod support;
