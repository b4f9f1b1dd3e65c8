#![no_std]
// This library target is empty on purpose; see Cargo.toml.
