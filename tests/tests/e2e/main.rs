//! The end-to-end tests: the real `bglass` and `bglass-proxy` binaries against real nginx,
//! sshd and Redis on loopback, one module per area. One test binary (one link step) for all
//! of them; the test harness runs their tests in parallel.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access_wait;
mod admin_signatures;
mod agent;
mod audit_crash;
mod audit_live;
mod audit_monitor;
mod audit_policy;
mod audit_report;
mod audit_rollback;
mod audit_tamper;
mod audit_tiles;
mod benchmarks;
mod binary;
mod canary;
mod catalog_check;
mod checkpoint_interop;
mod cli_hardening;
mod cli_output;
mod did_you_mean;
mod docs_output;
mod drill;
mod enroll;
mod https_upstream;
mod key_rotation;
mod kubectl;
mod messages;
mod proxy_check;
mod proxy_flow;
mod proxy_hardening;
mod proxy_ops;
mod proxy_refusals;
mod recorded_ssh;
mod rekey;
mod requests_cancel;
mod review_package;
mod ssh_ca_rotation;
mod ssh_certificates;
mod ssh_tcp;
mod storage_faults;
mod tui;
mod witnesses;
