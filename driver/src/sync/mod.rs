//! `deltasync sync A B`: two-way sync with a state database.

pub mod plan;
