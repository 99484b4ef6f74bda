//! The log mirroring route `/v1/audit/tile/<L>/<N>` with levels no tree has: refused with a
//! 400 (never a panic in the level arithmetic), and the proxy keeps serving.

use bglass_tests::raw::Raw;
use bglass_tests::world::{TEST_CATALOG, World};

#[test]
fn tile_levels_beyond_the_tree_are_a_400_and_the_proxy_keeps_serving() {
    let mut w = World::new(&["proxy-a"], &[("alice", "responder,auditor")]);
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w.start_all();
    let alice = Raw::new(
        &w.responder("alice").config,
        &w.proxies[0].url(),
        &w.proxies[0].pin,
    );
    // The partial level-0 tile of a small tree exists.
    let ok = alice.send("GET", "/v1/audit/tile/0/000.p/1", None, &[]);
    assert_eq!(ok.status, 200, "{}", ok.body);
    for level in ["200", "255", "64", "63", "8", "7", "1"] {
        let path = format!("/v1/audit/tile/{level}/000");
        let answer = alice.send("GET", &path, None, &[]);
        assert_eq!(answer.status, 400, "{path}: {}", answer.body);
        assert_eq!(answer.code, "malformed", "{path}: {}", answer.body);
        assert!(answer.body.contains("level"), "{path}: {}", answer.body);
    }
    // Still serving after every one of them.
    let again = alice.send("GET", "/v1/audit/tile/0/000.p/1", None, &[]);
    assert_eq!(again.status, 200, "{}", again.body);
    let health = alice.send("GET", "/healthz", None, &[]);
    assert_eq!(health.status, 200, "{}", health.body);
}
