//! The drill simulator and live drills: `bglass drill simulate` runs a scenario against a
//! world of proxies and tools on loopback, with the scenario's faults put on its named links
//! ([`link`]); live drills run the same scenarios against real proxies.

pub mod link;
pub mod participant;
pub mod simulate;
pub mod tools;
pub mod world;
