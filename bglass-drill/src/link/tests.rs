//! The fault link against a real loopback upstream: each kind of fault acts as the module
//! documentation says, alone and combined.

use std::sync::atomic::AtomicUsize;

use bglass_core::scenario::Millis;
use tokio::io::AsyncReadExt;

use super::effects::XorShift;
use super::*;
use std::sync::atomic::Ordering;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// What the test upstream does with a connection.
#[derive(Clone, Copy)]
enum Upstream {
    /// Echoes until the client closes, then closes.
    Echo,
    /// Closes at once.
    Close,
}

/// A loopback upstream; returns its address and how many connections it accepted.
async fn upstream(mode: Upstream) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepts);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            if let Upstream::Echo = mode {
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        }
    });
    (addr, accepts)
}

async fn link(name: &str, mode: Upstream) -> (Arc<FaultLink>, Arc<AtomicUsize>) {
    let (addr, accepts) = upstream(mode).await;
    (
        FaultLink::bind(name.to_owned(), addr).await.unwrap(),
        accepts,
    )
}

fn ms(n: u64) -> Millis {
    Millis::from_ms(n)
}

async fn connect(link: &FaultLink) -> TcpStream {
    let stream = TcpStream::connect(link.addr()).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

async fn round_trip(stream: &mut TcpStream, message: &[u8]) {
    stream.write_all(message).await.unwrap();
    let mut back = vec![0; message.len()];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut back))
        .await
        .expect("echo within 5 s")
        .unwrap();
    assert_eq!(back, message);
}

/// Nothing arrives for 300 ms.
async fn assert_silent(stream: &mut TcpStream) {
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await;
    assert!(read.is_err(), "expected silence, got {read:?}");
}

/// The connection ends (reset, or closed if `reset_only` is false) within a second.
async fn assert_cut(stream: &mut TcpStream, reset_only: bool) {
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf))
        .await
        .expect("cut within 1 s");
    match read {
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Ok(0) if !reset_only => {}
        other => panic!("expected a reset, got {other:?}"),
    }
}

#[tokio::test]
async fn healthy_link_carries_bytes_both_ways_and_closes() {
    let (link, accepts) = link("responder->proxy:a", Upstream::Echo).await;
    assert_eq!(link.name(), "responder->proxy:a");
    assert!(link.addr().ip().is_loopback());
    let mut stream = connect(&link).await;
    round_trip(&mut stream, b"hello").await;

    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = stream.into_split();
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), r.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    assert_eq!(back, payload);
    assert_eq!(link.connections(), 1);
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn non_loopback_upstream_is_refused() {
    let err = FaultLink::bind("x".to_owned(), "192.0.2.1:80".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn latency_delays_each_way() {
    let (link, _) = link("latency", Upstream::Echo).await;
    link.set_faults(vec![FaultKind::Latency {
        latency: ms(200),
        jitter: ms(0),
    }]);
    let mut stream = connect(&link).await;
    let start = Instant::now();
    round_trip(&mut stream, b"ping").await;
    let rtt = start.elapsed();
    assert!(rtt >= Duration::from_millis(380), "{rtt:?}");
    assert!(rtt < Duration::from_secs(5), "{rtt:?}");
}

#[tokio::test]
async fn jitter_keeps_order() {
    let (link, _) = link("jitter", Upstream::Echo).await;
    link.set_faults(vec![FaultKind::Latency {
        latency: ms(30),
        jitter: ms(25),
    }]);
    let stream = connect(&link).await;
    let (mut r, mut w) = stream.into_split();
    let writer = tokio::spawn(async move {
        for i in 0..40u8 {
            w.write_all(&[i; 3]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let mut back = vec![0; 120];
    tokio::time::timeout(Duration::from_secs(5), r.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    let expected: Vec<u8> = (0..40u8).flat_map(|i| [i; 3]).collect();
    assert_eq!(back, expected);
}

#[tokio::test]
async fn bandwidth_limits_each_way() {
    let (link, _) = link("bandwidth", Upstream::Echo).await;
    link.set_faults(vec![FaultKind::Bandwidth {
        bytes_per_sec: 64 * 1024,
    }]);
    let stream = connect(&link).await;
    let start = Instant::now();
    let (mut r, mut w) = stream.into_split();
    let writer = tokio::spawn(async move { w.write_all(&[7; 128 * 1024]).await.unwrap() });
    let mut back = vec![0; 128 * 1024];
    tokio::time::timeout(Duration::from_secs(8), r.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");
}

#[tokio::test]
async fn bandwidth_is_shared_by_the_connections() {
    let (link, _) = link("shared", Upstream::Echo).await;
    link.set_faults(vec![FaultKind::Bandwidth {
        bytes_per_sec: 64 * 1024,
    }]);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(&link).await;
        tasks.push(tokio::spawn(async move {
            round_trip(&mut stream, &[1; 64 * 1024]).await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Alone, each would take about a second.
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");
}

#[tokio::test]
async fn down_refuses_new_connections_and_cuts_open_ones() {
    let (link, accepts) = link("down", Upstream::Echo).await;
    let mut open = connect(&link).await;
    round_trip(&mut open, b"before").await;
    link.set_faults(vec![FaultKind::Down]);
    assert_cut(&mut open, false).await;

    match TcpStream::connect(link.addr()).await {
        Ok(mut fresh) => assert_cut(&mut fresh, false).await,
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused),
    }
    assert_eq!(accepts.load(Ordering::SeqCst), 1);

    link.set_faults(Vec::new());
    let mut after = connect(&link).await;
    round_trip(&mut after, b"after").await;
}

#[tokio::test]
async fn blackhole_stalls_both_ways_until_cleared() {
    let (link, _) = link("blackhole", Upstream::Echo).await;
    let mut open = connect(&link).await;
    round_trip(&mut open, b"before").await;
    link.set_faults(vec![FaultKind::Blackhole]);
    open.write_all(b"held").await.unwrap();
    assert_silent(&mut open).await;
    let mut fresh = connect(&link).await;
    fresh.write_all(b"fresh").await.unwrap();
    assert_silent(&mut fresh).await;

    link.set_faults(Vec::new());
    let mut back = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(2), open.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"held");
    let mut back = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(2), fresh.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"fresh");
    let mut after = connect(&link).await;
    round_trip(&mut after, b"after").await;
}

#[tokio::test]
async fn reset_resets_open_connections_and_new_ones_at_their_first_bytes() {
    let (link, _) = link("reset", Upstream::Echo).await;
    let mut open = connect(&link).await;
    round_trip(&mut open, b"before").await;
    link.set_faults(vec![FaultKind::Reset]);
    assert_cut(&mut open, true).await;

    let mut fresh = connect(&link).await;
    fresh.write_all(b"first").await.unwrap();
    assert_cut(&mut fresh, true).await;
}

#[tokio::test]
async fn timeout_never_reaches_the_far_end_and_open_ones_carry_on() {
    let (link, accepts) = link("timeout", Upstream::Echo).await;
    let mut open = connect(&link).await;
    round_trip(&mut open, b"before").await;
    link.set_faults(vec![FaultKind::Timeout]);

    let mut fresh = connect(&link).await;
    fresh.write_all(b"hello").await.unwrap();
    assert_silent(&mut fresh).await;
    round_trip(&mut open, b"still").await;
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
    assert_eq!(link.connections(), 2);

    // It stays unconnected after the fault ends.
    link.set_faults(Vec::new());
    assert_silent(&mut fresh).await;
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn slow_close_holds_back_the_close() {
    let (link, _) = link("slow-close", Upstream::Close).await;
    let mut buf = [0u8; 8];

    let start = Instant::now();
    let mut quick = connect(&link).await;
    assert_eq!(quick.read(&mut buf).await.unwrap(), 0);
    assert!(start.elapsed() < Duration::from_millis(250));

    link.set_faults(vec![FaultKind::SlowClose { hold: ms(300) }]);
    let start = Instant::now();
    let mut slow = connect(&link).await;
    let read = tokio::time::timeout(Duration::from_secs(3), slow.read(&mut buf)).await;
    assert_eq!(read.unwrap().unwrap(), 0);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
}

#[tokio::test]
async fn shutdown_resets_open_connections_and_stops_accepting() {
    let (link, _) = link("shutdown", Upstream::Echo).await;
    let mut open = connect(&link).await;
    round_trip(&mut open, b"before").await;
    link.shutdown();
    assert_cut(&mut open, true).await;
    for _ in 0..50 {
        if TcpStream::connect(link.addr()).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("still accepting after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_under_latency_run_side_by_side() {
    let (link, _) = link("many", Upstream::Echo).await;
    link.set_faults(vec![FaultKind::Latency {
        latency: ms(50),
        jitter: ms(10),
    }]);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let mut stream = connect(&link).await;
        tasks.push(tokio::spawn(async move {
            round_trip(&mut stream, &i.to_be_bytes()).await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(link.connections(), 200);
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn faults_combine() {
    let effects = Effects::of(&[
        FaultKind::Latency {
            latency: ms(100),
            jitter: ms(10),
        },
        FaultKind::Latency {
            latency: ms(50),
            jitter: ms(0),
        },
        FaultKind::Bandwidth {
            bytes_per_sec: 1000,
        },
        FaultKind::Bandwidth { bytes_per_sec: 500 },
        FaultKind::SlowClose { hold: ms(20) },
        FaultKind::SlowClose { hold: ms(70) },
    ]);
    assert_eq!(effects.latency_ms, 150);
    assert_eq!(effects.jitter_ms, 10);
    assert_eq!(effects.bandwidth, Some(500));
    assert_eq!(effects.slow_close, Some(Duration::from_millis(70)));
    assert!(!effects.down && !effects.blackhole && !effects.reset && !effects.timeout);

    let mut rng = XorShift::new(seed_of("x"));
    for _ in 0..1000 {
        let d = effects.delay(&mut rng);
        assert!((140..=160).contains(&d.as_millis()), "{d:?}");
    }
}

#[tokio::test]
async fn down_or_reset_switching_on_bumps_the_cut_epoch() {
    let (link, _) = link("epoch", Upstream::Echo).await;
    let epoch = || link.state.borrow().cut_epoch;
    link.set_faults(vec![FaultKind::Down]);
    assert_eq!(epoch(), 1);
    link.set_faults(vec![FaultKind::Down, FaultKind::Blackhole]);
    assert_eq!(epoch(), 1);
    link.set_faults(vec![FaultKind::Reset, FaultKind::Down]);
    assert_eq!(epoch(), 2);
    link.set_faults(Vec::new());
    link.set_faults(vec![FaultKind::Down]);
    assert_eq!(epoch(), 3);
}
