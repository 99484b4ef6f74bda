//! A mistyped service name gets the closest names in the catalog the proxy serves, in every
//! command that takes one, and never the advice to ask for access to the misspelling.

use bglass_tests::world::{TEST_CATALOG, World};

#[test]
fn a_mistyped_service_name_gets_did_you_mean_in_every_command_that_takes_one() {
    let mut w = World::new(&["proxy-a"], &[("carol", "responder")]);
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w.start_all();

    let access = w.bglass(
        "carol",
        &["access", "grafna", "--reason", "r", "--incident", "I"],
    );
    assert_eq!(access.code, Some(3), "{}", access.stderr);
    assert!(
        access.stderr.contains("(unknown_service)")
            && access.stderr.contains("did you mean `grafana`?"),
        "{}",
        access.stderr
    );

    let commands: [&[&str]; 6] = [
        &["curl", "grafna", "/"],
        &["open", "grafna", "--no-browser"],
        &["ssh", "grafna", "--", "true"],
        &["tunnel", "grafna"],
        &["forward", "grafna"],
        &["curl", "agrocd", "/"],
    ];
    for args in commands {
        let out = w.bglass("carol", args);
        let meant = if args[1] == "agrocd" {
            "argocd"
        } else {
            "grafana"
        };
        assert_eq!(out.code, Some(3), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("no service {} in proxy-a's catalog", args[1]))
                && out.stderr.contains(&format!("did you mean `{meant}`?")),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("bglass access"),
            "{args:?} must not suggest access to the misspelling: {}",
            out.stderr
        );
    }

    // A name nothing is close to: no guess, the list of services instead.
    let far = w.bglass("carol", &["curl", "kubernetes", "/"]);
    assert_eq!(far.code, Some(3), "{}", far.stderr);
    assert!(!far.stderr.contains("did you mean"), "{}", far.stderr);
    assert!(far.stderr.contains("bglass status"), "{}", far.stderr);

    // A real service without a grant: ask for access to it.
    let known = w.bglass("carol", &["curl", "argocd", "/"]);
    assert_eq!(known.code, Some(3), "{}", known.stderr);
    assert!(
        known.stderr.contains("you hold no active grant for argocd")
            && known.stderr.contains("bglass access argocd"),
        "{}",
        known.stderr
    );
}
