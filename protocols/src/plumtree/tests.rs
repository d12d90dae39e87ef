//! Unit tests of the Plumtree state machine.
