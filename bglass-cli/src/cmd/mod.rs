//! One module per command.

pub mod audit;
pub mod catalog;
pub mod completions;
pub mod enroll;
pub mod whoami;
