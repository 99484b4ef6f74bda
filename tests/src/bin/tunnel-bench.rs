//! Benchmark: N concurrent tunnels through one proxy to a TCP echo server. Prints how many
//! were opened and echoed (none may be dropped) and the proxy's resident memory.
//!
//! cargo run --release -p bglass-tests --bin tunnel-bench -- 1000

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bglass_tests::raw::Raw;
use bglass_tests::tunnels::{self, ECHO_CATALOG};
use bglass_tests::world::World;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let mut w = World::new(&["proxy-a"], &[("alice", "responder")]);
    w.set_tcp_port(tunnels::start_echo());
    w.catalog(ECHO_CATALOG);
    w.start_all();
    let token = w.access("alice", "echo")["grant"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let alice = Raw::new(
        &w.responder("alice").config,
        &w.proxies[0].url(),
        &w.proxies[0].pin,
    );
    let pid = w.pid(0).unwrap();
    let run = tunnels::run(&w, &alice, &token, n, pid);
    println!("tunnels requested:        {n}");
    println!(
        "tunnels opened:           {} ({} dropped)",
        run.opened,
        n - run.opened
    );
    println!("tunnels echoing:          {}", run.echoed);
    println!(
        "time to open all:         {:.2} s",
        run.open_time.as_secs_f64()
    );
    println!(
        "proxy RSS before:         {:.1} MiB",
        run.rss_before_kib as f64 / 1024.0
    );
    println!(
        "proxy RSS, all open:      {:.1} MiB (target 64 MiB: {:.2}x; {:.1} KiB per tunnel)",
        run.rss_kib as f64 / 1024.0,
        run.rss_kib as f64 / 1024.0 / 64.0,
        run.rss_kib.saturating_sub(run.rss_before_kib) as f64 / n as f64
    );
    if run.echoed != n {
        std::process::exit(1);
    }
}
