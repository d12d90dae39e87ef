//! Shared helpers for the criterion benches (the benches live in `benches/benches/`).
