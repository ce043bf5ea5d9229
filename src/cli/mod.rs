//! CLI commands that live in a file of their own (one command per file,
//! with its arguments beside it). The rest still live in `main.rs`; moving
//! them here is issue 12's work.

pub mod inspect_commands;
