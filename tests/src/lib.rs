//! Helpers for the system tests live in `devstack`; this crate holds only tests.
