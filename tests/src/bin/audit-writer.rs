//! Test support for the crash test: appends to an audit log from several threads until
//! killed, printing `ack <index> <grant id>` only after each append has returned (so every
//! printed line is an acknowledged, durable entry).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::sync::Arc;

use bglass_core::audit::event::EventKind;
use bglass_core::id::GrantId;
use bglass_tests::audit;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: audit-writer DIR ROUND"));
    let round: u64 = args.next().expect("round").parse().expect("round number");
    let log = Arc::new(audit::open(&dir));
    if log.size() == 0 {
        log.append(audit::start().to_bytes().unwrap()).unwrap();
    }
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let log = Arc::clone(&log);
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                for i in 0u64.. {
                    let id = format!("g-{:04x}{:02x}{:010x}", round, t, i);
                    let event = audit::event(
                        i,
                        None,
                        None,
                        EventKind::Expiry {
                            grant: GrantId::new(&id).unwrap(),
                        },
                    );
                    let appended = log.append(event.to_bytes().unwrap()).unwrap();
                    let mut out = out.lock().unwrap();
                    writeln!(out, "ack {} {id}", appended.index).unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
