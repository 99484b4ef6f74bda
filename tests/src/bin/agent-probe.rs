//! Test support: talks to a bglass key agent's socket directly, as an attacker on the same
//! machine would: `agent-probe SOCKET JSON` sends one request and prints the answer;
//! `agent-probe SOCKET --claim-len N` sends a frame header claiming N bytes and a few bytes
//! of body. Prints `closed` when the agent closed the connection without an answer, and
//! `connect: …` when the socket could not be reached.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(socket), Some(what)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: agent-probe SOCKET JSON | agent-probe SOCKET --claim-len N");
        std::process::exit(2);
    };
    let mut stream = match UnixStream::connect(socket) {
        Ok(stream) => stream,
        Err(e) => {
            println!("connect: {e}");
            return;
        }
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
    let frame = if what == "--claim-len" {
        let n: u32 = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(u32::MAX);
        let mut frame = n.to_be_bytes().to_vec();
        frame.extend_from_slice(b"{\"op\":");
        frame
    } else {
        let mut frame = (what.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(what.as_bytes());
        frame
    };
    // The agent may refuse (and close) before reading everything: ignore write errors.
    let _ = stream.write_all(&frame);
    let mut len = [0u8; 4];
    if stream.read_exact(&mut len).is_err() {
        println!("closed");
        return;
    }
    let mut body = vec![0u8; u32::from_be_bytes(len).min(1 << 20) as usize];
    if stream.read_exact(&mut body).is_err() {
        println!("closed");
        return;
    }
    println!("{}", String::from_utf8_lossy(&body));
}
