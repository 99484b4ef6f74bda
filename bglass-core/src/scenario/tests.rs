use std::path::{Path, PathBuf};

use super::*;
use crate::id::{DependencyName, ProxyId};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn shipped_catalog() -> Catalog {
    Catalog::load(&root().join("services.toml")).unwrap()
}

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::from_bytes(Path::new("drills/test.toml"), text.as_bytes().to_vec())
}

const MINIMAL: &str = r#"
version = 1
name = "t"
description = "a test"
duration = "10s"
[participants]
count = 3
approvers = 3
"#;

#[test]
fn every_shipped_scenario_loads_and_checks_against_its_catalog() {
    let drills = root().join("drills");
    let mut seen = 0;
    for entry in std::fs::read_dir(&drills).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".toml") || name.contains("production") {
            continue;
        }
        let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let catalog = match &scenario.catalog {
            Some(p) => Catalog::load(p).unwrap(),
            None => shipped_catalog(),
        };
        let production = scenario
            .production
            .as_ref()
            .map(|p| Production::load(p).unwrap());
        scenario
            .check(&catalog, "services.toml", production.as_ref())
            .unwrap_or_else(|e| panic!("{e}"));
        seen += 1;
    }
    assert!(seen >= 5, "the issue asks for at least five scenarios");
}

#[test]
fn a_minimal_scenario_takes_the_defaults() {
    let s = parse(MINIMAL).unwrap();
    assert_eq!(s.proxies, vec![ProxyId::new("primary").unwrap()]);
    assert_eq!(s.participants.services, None);
    assert_eq!(s.participants.arrival, Millis::default());
    assert!(s.faults.is_empty());
    assert_eq!(s.expect.unaudited, 0);
    assert_eq!(s.services(&shipped_catalog()).len(), 18);
}

#[test]
fn faults_parse_with_their_parameters_and_windows() {
    let s = parse(
        r#"
version = 1
name = "t"
description = "a test"
duration = "10s"
proxies = ["a", "b"]
[participants]
count = 3
approvers = 3
[[fault]]
link = "responder->proxy:a"
kind = "down"
start = "2s"
[[fault]]
link = "proxy->service:grafana"
kind = "latency"
latency = "300ms"
jitter = "20ms"
end = "5s"
[[fault]]
link = "proxy->service:logs"
kind = "bandwidth"
rate = "64KiB/s"
[[fault]]
link = "proxy->notify"
kind = "slow_close"
hold = "1s"
"#,
    )
    .unwrap();
    assert_eq!(s.faults.len(), 4);
    assert_eq!(
        s.faults[0].link,
        Link::ResponderToProxy(ProxyId::new("a").unwrap())
    );
    assert_eq!(
        s.faults[0].end.as_ms(),
        10_000,
        "end defaults to the drill's end"
    );
    assert!(s.faults[0].active_at(2000) && !s.faults[0].active_at(1999));
    assert_eq!(
        s.faults[1].kind,
        FaultKind::Latency {
            latency: Millis::from_ms(300),
            jitter: Millis::from_ms(20)
        }
    );
    assert_eq!(
        s.faults[2].kind,
        FaultKind::Bandwidth {
            bytes_per_sec: 65_536
        }
    );
    assert_eq!(s.faults[3].link.to_string(), "proxy->notify");
    assert_eq!(s.faults[1].kind.describe(), "latency 300ms ±20ms");
}

/// Each malformed scenario fails with its own rule, located on the right line.
#[test]
fn malformed_scenarios_are_refused_with_the_rule_and_the_line() {
    let head = "version = 1\nname = \"t\"\ndescription = \"d\"\nduration = \"10s\"\n";
    let people = "[participants]\ncount = 3\napprovers = 3\n";
    let cases: Vec<(String, &str, usize)> = vec![
        (format!("{head}{people}extra = 1\n"), "unknown field", 8),
        (
            head.replace("version = 1", "version = 2") + people,
            "unsupported scenario version",
            1,
        ),
        (
            head.replace("\"t\"", "\"Bad Name\"") + people,
            "name \"Bad Name\" is invalid",
            2,
        ),
        (
            head.replace("\"10s\"", "\"10\"") + people,
            "is not a duration",
            4,
        ),
        (
            head.replace("\"10s\"", "\"2h\"") + people,
            "from 1s to 1h",
            4,
        ),
        (
            format!("{head}proxies = [\"a\", \"a\"]\n{people}"),
            "proxy \"a\" is listed twice",
            5,
        ),
        (
            format!("{head}[participants]\ncount = 0\napprovers = 0\n"),
            "participants.count must be from 1",
            6,
        ),
        (
            format!("{head}[participants]\ncount = 3\napprovers = 4\n"),
            "participants.approvers must be from 0 to count",
            7,
        ),
        (
            format!("{head}[participants]\ncount = 3\napprovers = 3\narrival = \"10s\"\n"),
            "shorter than duration",
            8,
        ),
        (
            format!("{head}{people}[[fault]]\nlink = \"proxy->db\"\nkind = \"down\"\n"),
            "is not a named link",
            9,
        ),
        (
            format!("{head}{people}[[fault]]\nlink = \"responder->proxy:zz\"\nkind = \"down\"\n"),
            "names proxy \"zz\"",
            9,
        ),
        (
            format!("{head}{people}[[fault]]\nlink = \"proxy->notify\"\nkind = \"flood\"\n"),
            "unknown fault kind \"flood\"",
            10,
        ),
        (
            format!("{head}{people}[[fault]]\nlink = \"proxy->notify\"\nkind = \"latency\"\n"),
            "a latency fault needs latency",
            8,
        ),
        (
            format!(
                "{head}{people}[[fault]]\nlink = \"proxy->notify\"\nkind = \"down\"\nlatency = \"1s\"\n"
            ),
            "a down fault does not take latency",
            8,
        ),
        (
            format!(
                "{head}{people}[[fault]]\nlink = \"proxy->notify\"\nkind = \"bandwidth\"\nrate = \"fast\"\n"
            ),
            "rate \"fast\" is invalid",
            11,
        ),
        (
            format!(
                "{head}{people}[[fault]]\nlink = \"proxy->notify\"\nkind = \"down\"\nstart = \"5s\"\nend = \"5s\"\n"
            ),
            "fault window 5s..5s",
            8,
        ),
        (
            format!(
                "{head}{people}[[fault]]\nlink = \"proxy->notify\"\nkind = \"down\"\nend = \"11s\"\n"
            ),
            "end by duration = 10s",
            8,
        ),
        (
            format!("{head}{people}[expect]\nsuccess_rate = 1.5\n"),
            "expect.success_rate must be a fraction",
            9,
        ),
        (
            format!("{head}{people}[expect]\nunaudited = -1\n"),
            "expect.unaudited must be 0 or more",
            9,
        ),
        (
            format!("{head}down = [\"dns\"]\n{people}"),
            "needs production = \"FILE\"",
            5,
        ),
        (
            format!(
                "{head}{people}[[expect.tool]]\nname = \"grafana\"\n[[expect.tool]]\nname = \"grafana\"\n"
            ),
            "expect.tool \"grafana\" is listed twice",
            11,
        ),
    ];
    for (text, rule, line) in cases {
        let e = parse(&text).expect_err(&text);
        let shown = e.to_string();
        assert!(shown.contains(rule), "{shown} lacks {rule:?}\n{text}");
        assert_eq!(e.position.map(|p| p.line), Some(line), "{shown}\n{text}");
    }
}

#[test]
fn oversized_and_too_many_faults_are_refused_before_parsing() {
    let big = "#".repeat(70 * 1024);
    assert!(parse(&big).unwrap_err().to_string().contains("too large"));
    let mut many = String::from(MINIMAL);
    for _ in 0..=MAX_FAULTS {
        many.push_str("[[fault]]\nlink = \"proxy->notify\"\nkind = \"down\"\n");
    }
    assert!(
        parse(&many)
            .unwrap_err()
            .to_string()
            .contains("too many faults")
    );
}

#[test]
fn references_are_checked_against_the_catalog_and_production() {
    let catalog = shipped_catalog();
    let s = parse(&MINIMAL.replace(
        "approvers = 3\n",
        "approvers = 3\nservices = [\"grafana\", \"nope\"]\n",
    ))
    .unwrap();
    let e = s.check(&catalog, "services.toml", None).unwrap_err();
    assert!(e.to_string().contains("names service \"nope\""), "{e}");
    assert_eq!(e.position.map(|p| p.line), Some(9));

    let s = parse(&format!(
        "{MINIMAL}[[fault]]\nlink = \"proxy->service:ghost\"\nkind = \"down\"\n"
    ))
    .unwrap();
    assert!(
        s.check(&catalog, "c", None)
            .unwrap_err()
            .to_string()
            .contains("ghost")
    );

    // vault needs two approvals: three approvers at least (no self-approval).
    let s = parse(&MINIMAL.replace("approvers = 3", "approvers = 2")).unwrap();
    let e = s.check(&catalog, "c", None).unwrap_err().to_string();
    assert!(
        e.contains("vault needs 2 approval(s)") && e.contains("at least 3"),
        "{e}"
    );

    let production = Production::from_bytes(
        Path::new("p.toml"),
        b"version = 1\n[[dependency]]\nname = \"dns\"\ndescription = \"d\"\nresolves_names = true\n"
            .to_vec(),
    )
    .unwrap();
    let s = parse(
        "version = 1\nname = \"t\"\ndescription = \"d\"\nduration = \"10s\"\nproduction = \"p.toml\"\ndown = [\"dns\", \"idp\"]\n[participants]\ncount = 3\napprovers = 3\n",
    )
    .unwrap();
    let e = s.check(&catalog, "c", Some(&production)).unwrap_err();
    assert!(e.to_string().contains("down names \"idp\""), "{e}");
    assert_eq!(e.position.map(|p| p.line), Some(6));
}

#[test]
fn production_dependencies_match_addresses_ranges_and_names() {
    let p = Production::load(&root().join("drills/production.toml")).unwrap();
    let zt = p.get(&DependencyName::new("zero-trust").unwrap()).unwrap();
    let addr = |s: &str| production::Endpoint::Addr(s.parse().unwrap());
    assert!(
        zt.matches(&addr("127.0.9.7:443"))
            .unwrap()
            .contains("127.0.9.0/24")
    );
    assert!(zt.matches(&addr("127.0.0.1:18001")).is_none());
    let idp = p.get(&DependencyName::new("idp").unwrap()).unwrap();
    assert!(idp.matches(&addr("127.0.8.10:443")).is_some());
    assert!(
        idp.matches(&addr("127.0.8.10:80")).is_none(),
        "port given: only that port"
    );
    let name = production::Endpoint::Name {
        host: "bglass.example".into(),
        port: 443,
    };
    let dns = p.get(&DependencyName::new("dns").unwrap()).unwrap();
    assert!(dns.matches(&name).unwrap().contains("needs dns"));
    let pinned = production::Endpoint::PinnedName {
        host: "bglass.example".into(),
        addr: "127.0.0.1:8443".parse().unwrap(),
    };
    assert!(
        dns.matches(&pinned).is_none(),
        "a pinned address needs no DNS"
    );
    let corp = production::Endpoint::PinnedName {
        host: "proxy.corp.example".into(),
        addr: "127.0.0.1:8443".parse().unwrap(),
    };
    assert!(
        p.get(&DependencyName::new("corp-network").unwrap())
            .unwrap()
            .matches(&corp)
            .is_some()
    );

    for (bad, rule) in [
        (
            "version = 1\n[[dependency]]\nname = \"x\"\ndescription = \"d\"\n",
            "lists no ranges",
        ),
        (
            "version = 1\n[[dependency]]\nname = \"x\"\ndescription = \"d\"\nranges = [\"10.0.0.0/33\"]\n",
            "not an address range",
        ),
        (
            "version = 1\n[[dependency]]\nname = \"x\"\ndescription = \"d\"\naddresses = [\"host:1\"]\n",
            "not an IP address",
        ),
        (
            "version = 1\n[[dependency]]\nname = \"x\"\ndescription = \"d\"\nhosts = [\"a..b\"]\n",
            "not a host name",
        ),
        (
            "version = 1\n[[dependency]]\nname = \"X\"\ndescription = \"d\"\nhosts = [\"a\"]\n",
            "name \"X\" is invalid",
        ),
        (
            "version = 1\n[[dependency]]\nname = \"x\"\ndescription = \"d\"\nhosts = [\"a\"]\n[[dependency]]\nname = \"x\"\ndescription = \"d\"\nhosts = [\"a\"]\n",
            "declared twice",
        ),
        (
            "version = 1\n[[dependency]]\nname = \"x\"\ndescription = \"d\"\nhosts = [\"a\"]\nport = 1\n",
            "unknown field",
        ),
    ] {
        let e = Production::from_bytes(Path::new("p.toml"), bad.as_bytes().to_vec()).unwrap_err();
        assert!(e.to_string().contains(rule), "{e} lacks {rule}");
    }
}

#[test]
fn rates_parse_and_print() {
    assert_eq!(parse_rate("64KiB/s"), Some(65_536));
    assert_eq!(parse_rate("1MiB/s"), Some(1_048_576));
    assert_eq!(parse_rate("500KB/s"), Some(500_000));
    assert_eq!(parse_rate("1000B/s"), Some(1000));
    for bad in ["", "1MiB", "MiB/s", "1.5MiB/s", "0B/s", "1TiB/s", "-1B/s"] {
        assert_eq!(parse_rate(bad), None, "{bad}");
    }
    assert_eq!(rate_text(65_536), "64KiB/s");
    assert_eq!(rate_text(1000), "1000B/s");
}
