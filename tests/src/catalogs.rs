//! The catalogs of the end-to-end tests, with placeholders the world fills in when it writes
//! them: `{nginx}`, `{dead}`, `{ssh}`, `{hostkey}`, `{rssh}`, `{rhostkey}` and `{redis}`.

/// A catalog for tests: `grafana` (no approval) and `argocd` (one approval, emergency
/// bypass) on nginx, `down` on a dead port, `prom` on nginx with a 30 s max TTL.
pub const TEST_CATALOG: &str = r#"version = 1

[[service]]
name = "grafana"
kind = "http"
description = "Dashboards"
upstream = "127.0.0.1:{nginx}"
max_ttl = "4h"
default_ttl = "1h"
approvals = 0
health = { path = "/api/health", expect_status = 200, auth = true }
inject = { header = "Authorization", secret = "nginx_basic", format = "Basic {}" }

[[service]]
name = "argocd"
kind = "http"
description = "Deploys"
upstream = "127.0.0.1:{nginx}"
max_ttl = "2h"
default_ttl = "30m"
approvals = 1
emergency_bypass = true
emergency_ttl = "10m"
health = { path = "/api/health", expect_status = 200, auth = true }
inject = { header = "Authorization", secret = "nginx_basic", format = "Basic {}" }

[[service]]
name = "prom"
kind = "http"
description = "Metrics, short grants"
upstream = "127.0.0.1:{nginx}"
max_ttl = "1h"
default_ttl = "3s"
approvals = 0
health = { path = "/api/health", expect_status = 200, auth = true }
inject = { header = "Authorization", secret = "nginx_basic", format = "Basic {}" }

[[service]]
name = "down"
kind = "http"
description = "A tool that is down"
upstream = "127.0.0.1:{dead}"
max_ttl = "1h"
default_ttl = "30m"
approvals = 0
health = { path = "/", expect_status = 200 }
"#;

/// The catalog of the SSH and TCP tests: `bastion` (ssh, no approval), `brief` (ssh, 5 s
/// grants), `impostor` (ssh, another host key pinned), `redis` (tcp). The three SSH
/// services are one sshd, so they share the principal `breakglass`, and say so.
pub const SSH_CATALOG: &str = r#"version = 1

[[service]]
name = "bastion"
kind = "ssh"
description = "SSH bastion"
upstream = "127.0.0.1:{ssh}"
max_ttl = "1h"
default_ttl = "30m"
approvals = 0
principals = ["breakglass"]
share_principals = true
host_key = "{hostkey}"

[[service]]
name = "brief"
kind = "ssh"
description = "SSH with 5-second grants"
upstream = "127.0.0.1:{ssh}"
max_ttl = "1h"
default_ttl = "5s"
approvals = 0
principals = ["breakglass"]
share_principals = true
host_key = "{hostkey}"

[[service]]
name = "impostor"
kind = "ssh"
description = "The same host, with another key pinned"
upstream = "127.0.0.1:{ssh}"
max_ttl = "1h"
default_ttl = "30m"
approvals = 0
principals = ["breakglass"]
share_principals = true
host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0/BI1KeVrrphI4X6+F7i7ANSpCOIVU1XEA7twXn56K"

[[service]]
name = "redis"
kind = "tcp"
description = "A TCP service"
upstream = "127.0.0.1:{redis}"
max_ttl = "1h"
default_ttl = "30m"
approvals = 0
probe = "redis"
"#;

/// The catalog of the recorded-SSH tests: `bastion` (ssh, not recorded) and `vault-ssh` (ssh,
/// `record = true`, on the sshd that trusts only the session CA), sharing the principal
/// `breakglass` so that only the CA each host trusts tells them apart; `grafana` on nginx.
pub const RECORDED_CATALOG: &str = r#"version = 1

[[service]]
name = "bastion"
kind = "ssh"
description = "SSH bastion, not recorded"
upstream = "127.0.0.1:{ssh}"
max_ttl = "1h"
default_ttl = "30m"
approvals = 0
principals = ["breakglass"]
share_principals = true
host_key = "{hostkey}"

[[service]]
name = "vault-ssh"
kind = "ssh"
description = "A recorded host"
upstream = "127.0.0.1:{rssh}"
max_ttl = "1h"
default_ttl = "30m"
approvals = 0
principals = ["breakglass"]
share_principals = true
host_key = "{rhostkey}"
record = true

[[service]]
name = "grafana"
kind = "http"
description = "Dashboards"
upstream = "127.0.0.1:{nginx}"
max_ttl = "4h"
default_ttl = "1h"
approvals = 0
health = { path = "/api/health", expect_status = 200, auth = true }
inject = { header = "Authorization", secret = "nginx_basic", format = "Basic {}" }
"#;
