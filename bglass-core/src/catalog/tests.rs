use std::path::{Path, PathBuf};

use super::*;
use crate::failstale::{FailStale, Offer};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/catalog")
}

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../services.toml")
}

#[test]
fn shipped_catalog_has_the_18_tools() {
    let catalog = Catalog::load(&shipped()).unwrap();
    assert_eq!(catalog.services().len(), 18);
    for service in catalog.services() {
        assert!(
            service.upstream.addr.ip().is_loopback(),
            "{} must point at loopback in the shipped catalog",
            service.name
        );
    }
    // Production-change tools need an approval; read-only monitoring tools do not.
    let approvals = |name: &str| {
        catalog
            .get(&ServiceName::new(name).unwrap())
            .unwrap()
            .approvals
    };
    for change in [
        "kubernetes-api",
        "argocd",
        "config-api",
        "feature-flags",
        "dns-control",
        "bastion",
        "edge-router",
        "core-host",
    ] {
        assert!(approvals(change) >= 1, "{change} changes production");
    }
    for read_only in ["grafana", "prometheus", "logs", "tracing"] {
        assert_eq!(approvals(read_only), 0, "{read_only} is read-only");
    }
    assert_eq!(catalog.digest().len(), 64);
}

#[test]
fn good_catalog_parses_into_typed_services() {
    let catalog = Catalog::load(&testdata().join("good.toml")).unwrap();
    let names: Vec<&str> = catalog.services().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["grafana", "bastion", "postgres-control"]);
    let grafana = &catalog.services()[0];
    assert_eq!(grafana.default_ttl.as_secs(), 3600);
    assert_eq!(grafana.upstream.to_string(), "127.0.0.1:18001");
    match &grafana.kind {
        ServiceKind::Http { health, inject } => {
            assert_eq!(health.path, "/api/health");
            let inject = inject.as_ref().unwrap();
            assert_eq!(inject.render("t0k"), "Bearer t0k");
        }
        other => panic!("unexpected kind {other:?}"),
    }
    match &catalog.services()[1].kind {
        ServiceKind::Ssh {
            principals,
            host_key,
            permit_port_forwarding,
            ..
        } => {
            assert_eq!(principals, &["breakglass"]);
            assert!(host_key.starts_with("ssh-ed25519 AAAA"));
            assert!(!permit_port_forwarding);
        }
        other => panic!("unexpected kind {other:?}"),
    }
    assert!(matches!(
        catalog.services()[2].kind,
        ServiceKind::Tcp {
            probe: TcpProbe::Postgres
        }
    ));
}

/// Every file in `testdata/catalog/bad/` is refused with the error recorded in
/// `testdata/catalog/bad.expected` (file:line:column: rule). Set `BGLASS_BLESS=1` to
/// rewrite the expectations after a deliberate change, then review the diff.
#[test]
fn malformed_catalogs_are_refused_with_located_errors() {
    let dir = testdata().join("bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "need at least 15 malformed catalogs");
    let mut actual = String::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let err = Catalog::load(file).expect_err(&name);
        assert!(
            err.position.is_some(),
            "{name}: error must be located: {err}"
        );
        let shown = err.to_string().replace(&dir.display().to_string(), "bad");
        actual.push_str(&shown);
        actual.push('\n');
    }
    let expected_path = testdata().join("bad.expected");
    if std::env::var_os("BGLASS_BLESS").is_some() {
        std::fs::write(&expected_path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap();
    assert_eq!(actual, expected);
}

#[test]
fn oversized_catalog_is_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("services.toml");
    // Valid TOML all the way through, but over the limit: the refusal must come from the
    // size check (a parser would accept it).
    let mut text = String::from("version = 1\n");
    while text.len() as u64 <= CATALOG_LIMITS.max_bytes {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&path, &text).unwrap();
    let err = Catalog::load(&path).unwrap_err();
    match err.problem {
        CatalogProblem::Source(SourceProblem::TooLarge { size, limit }) => {
            assert_eq!(size, text.len() as u64);
            assert_eq!(limit, CATALOG_LIMITS.max_bytes);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let position = err.position.unwrap();
    assert!(position.line > 1, "located where the limit is crossed");
}

#[test]
fn too_many_services_are_refused_before_parsing() {
    let mut text = String::from("version = 1\n");
    for i in 0..=MAX_SERVICES {
        // Deliberately invalid content: the count must be refused before it is looked at.
        text.push_str(&format!("[[service]]\nname = \"s{i}\"\nbogus = \n"));
    }
    let err = Catalog::from_bytes(Path::new("many.toml"), text.into_bytes()).unwrap_err();
    assert!(matches!(
        err.problem,
        CatalogProblem::TooManyServices { count, limit } if count == MAX_SERVICES + 1 && limit == MAX_SERVICES
    ));
    assert_eq!(err.position.unwrap().line, 2 + 3 * MAX_SERVICES);
}

#[test]
fn fail_stale_holder_keeps_the_last_good_catalog() {
    let good = Catalog::load(&shipped()).unwrap();
    let digest = good.digest().to_owned();
    let holder = FailStale::new(good);

    let bad = Catalog::load(&testdata().join("bad/ttl-above-max.toml"));
    match holder.offer(bad, 1_700_000_000) {
        Offer::Rejected { error, kept } => {
            assert!(error.to_string().contains("above max_ttl"));
            assert_eq!(kept.digest(), digest);
        }
        Offer::Accepted(_) => panic!("a bad catalog must be rejected"),
    }
    assert_eq!(holder.current().digest(), digest);
    assert_eq!(holder.current().services().len(), 18);
    let rejection = holder.last_rejection().unwrap();
    assert_eq!(rejection.at, 1_700_000_000);
    assert!(rejection.reason.contains("ttl-above-max.toml:"));

    let newer = Catalog::load(&testdata().join("good.toml"));
    assert!(matches!(
        holder.offer(newer, 1_700_000_100),
        Offer::Accepted(_)
    ));
    assert_eq!(holder.current().services().len(), 3);
    assert_eq!(holder.generation(), 2);
}

#[test]
fn pins_parse_strictly() {
    let pin: CertPin = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
    assert_eq!(pin.to_string(), format!("sha256:{}", "ab".repeat(32)));
    assert!("sha256:AB".parse::<CertPin>().is_err());
    assert!(
        format!("sha1:{}", "ab".repeat(32))
            .parse::<CertPin>()
            .is_err()
    );
    assert!(
        format!("sha256:{}", "AB".repeat(32))
            .parse::<CertPin>()
            .is_err()
    );
}
