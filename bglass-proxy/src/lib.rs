//! bglass-proxy: the out-of-band authenticating proxy.
//!
//! Today it holds the configuration checks an operator runs before (re)loading a proxy:
//! the catalog and roster are validated with exactly the rules the running proxy applies.

pub mod check;
