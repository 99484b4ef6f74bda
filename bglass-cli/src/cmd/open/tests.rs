//! The forwarder's gate (session secret, cookie, Host, Origin, kubeconfig prefix) without a
//! network.

use super::*;

fn gate() -> (Gate, SocketAddr) {
    let local: SocketAddr = "127.0.0.1:4180".parse().unwrap();
    (Gate::new(local).unwrap(), local)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(
            header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    h
}

fn admit(g: &Gate, method: Method, uri: &str, pairs: &[(&str, &str)]) -> Admission {
    g.admit(&method, &uri.parse().unwrap(), &headers(pairs))
}

#[test]
fn the_kubeconfig_prefix_admits_only_when_set_and_equal() {
    let (mut g, _) = gate();
    let host = ("host", "127.0.0.1:4180");
    assert!(matches!(
        admit(&g, Method::GET, "/kube-0123abcd/version", &[host]),
        Admission::Refuse(Refusal::NoSession)
    ));
    g.kube = Some("0123abcd".to_owned());
    assert_eq!(
        admit(&g, Method::GET, "/kube-0123abcd/version", &[host]),
        Admission::Relay
    );
    assert_eq!(g.kube_path("/kube-0123abcd/api/v1"), Some("/api/v1"));
    assert_eq!(g.kube_path("/kube-0123abcd"), Some(""));
    for wrong in [
        "/kube-0123abce/version",
        "/kube-0123abc/version",
        "/kube-/version",
        "/version",
    ] {
        assert!(
            matches!(
                admit(&g, Method::GET, wrong, &[host]),
                Admission::Refuse(Refusal::NoSession)
            ),
            "{wrong}"
        );
    }
    // Another Host is refused even with the secret (DNS rebinding).
    assert!(matches!(
        admit(
            &g,
            Method::GET,
            "/kube-0123abcd/version",
            &[("host", "evil.example")]
        ),
        Admission::Refuse(Refusal::ForeignHost { .. })
    ));
}

#[test]
fn the_secret_starts_a_session_and_the_cookie_admits() {
    let (g, local) = gate();
    let url = g.url(local);
    let target = url.trim_start_matches("http://127.0.0.1:4180");
    let host = [("host", "127.0.0.1:4180")];
    assert_eq!(
        admit(&g, Method::GET, target, &host),
        Admission::StartSession {
            location: "/".to_owned()
        }
    );
    // Reusable, and other query parameters stay.
    let deep = format!("/d/x?a=1&{SESSION_PARAM}={}&b=2", g.secret);
    assert_eq!(
        admit(&g, Method::GET, &deep, &host),
        Admission::StartSession {
            location: "/d/x?a=1&b=2".to_owned()
        }
    );
    // Never a redirect to another host.
    let off = format!("//evil.example/?{SESSION_PARAM}={}", g.secret);
    assert_eq!(
        admit(&g, Method::GET, &off, &host),
        Admission::StartSession {
            location: "/".to_owned()
        }
    );
    let cookie = format!("theme=dark; {}={}", g.cookie, g.secret);
    let with = [("host", "localhost:4180"), ("cookie", cookie.as_str())];
    assert_eq!(admit(&g, Method::GET, "/x", &with), Admission::Relay);
    assert!(matches!(
        admit(&g, Method::GET, "/x", &host),
        Admission::Refuse(_)
    ));
    let wrong = format!("{}={}0", g.cookie, g.secret);
    assert!(matches!(
        admit(
            &g,
            Method::GET,
            "/x",
            &[("host", "127.0.0.1:4180"), ("cookie", &wrong)]
        ),
        Admission::Refuse(_)
    ));
    let guessed = format!("/?{SESSION_PARAM}=00");
    assert!(matches!(
        admit(&g, Method::GET, &guessed, &host),
        Admission::Refuse(_)
    ));
    assert!(matches!(
        admit(&g, Method::POST, target, &host),
        Admission::Refuse(_)
    ));
}

#[test]
fn the_launch_secret_works_once() {
    let (g, local) = gate();
    let launch = g.launch_url(local).unwrap();
    let target = launch
        .trim_start_matches("http://127.0.0.1:4180")
        .to_owned();
    let host = [("host", "127.0.0.1:4180")];
    // A HEAD or POST does not use it up.
    for method in [Method::HEAD, Method::POST] {
        assert!(matches!(
            admit(&g, method, &target, &host),
            Admission::Refuse(_)
        ));
    }
    assert!(matches!(
        admit(&g, Method::GET, &target, &host),
        Admission::StartSession { .. }
    ));
    assert!(matches!(
        admit(&g, Method::GET, &target, &host),
        Admission::Refuse(_)
    ));
    assert_eq!(g.launch_url(local), None);
}

#[test]
fn foreign_hosts_and_cross_site_writes_are_refused() {
    let (g, _) = gate();
    let cookie = format!("{}={}", g.cookie, g.secret);
    for host in ["evil.example:4180", "127.0.0.1:4181", "127.0.0.1", ""] {
        let h = [("host", host), ("cookie", cookie.as_str())];
        assert!(
            matches!(admit(&g, Method::GET, "/", &h), Admission::Refuse(_)),
            "{host}"
        );
    }
    // An absolute-form request naming another host.
    let h = [("host", "127.0.0.1:4180"), ("cookie", cookie.as_str())];
    assert!(matches!(
        admit(&g, Method::GET, "http://evil.example/", &h),
        Admission::Refuse(_)
    ));
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("origin", "http://127.0.0.1:4181"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let h = [
            ("host", "127.0.0.1:4180"),
            ("cookie", cookie.as_str()),
            (name, value),
        ];
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            assert!(
                matches!(admit(&g, method.clone(), "/", &h), Admission::Refuse(_)),
                "{method} {name}: {value}"
            );
        }
        // Reads are not refused for it (the cookie decides).
        assert_eq!(admit(&g, Method::GET, "/", &h), Admission::Relay);
    }
    for origin in ["http://127.0.0.1:4180", "http://localhost:4180"] {
        let h = [
            ("host", "127.0.0.1:4180"),
            ("cookie", cookie.as_str()),
            ("origin", origin),
            ("sec-fetch-site", "same-origin"),
        ];
        assert_eq!(admit(&g, Method::POST, "/", &h), Admission::Relay);
    }
}

#[test]
fn the_forwarders_cookie_is_stripped_and_others_kept() {
    let (g, _) = gate();
    let ours = format!("{}={}", g.cookie, g.secret);
    let h = headers(&[("cookie", &format!("a=1; {ours}")), ("cookie", "b=2")]);
    assert_eq!(g.strip_cookie(&h).as_deref(), Some("a=1; b=2"));
    assert_eq!(g.strip_cookie(&headers(&[("cookie", &ours)])), None);
    assert_eq!(g.strip_cookie(&HeaderMap::new()), None);
}

#[test]
fn port_80_accepts_the_host_without_a_port() {
    let g = Gate::new("127.0.0.1:80".parse().unwrap()).unwrap();
    assert!(g.names_us("127.0.0.1") && g.names_us("localhost") && g.names_us("127.0.0.1:80"));
    assert!(!g.names_us("127.0.0.1:8080"));
}
