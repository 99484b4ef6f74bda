//! Counters and gauges, rendered in the Prometheus text format on the metrics listener.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The proxy's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    denials: Mutex<BTreeMap<String, u64>>,
    config_rejections: Mutex<BTreeMap<String, u64>>,
    grants: AtomicU64,
    upstream_bytes_in: AtomicU64,
    upstream_bytes_out: AtomicU64,
    audit_appends: AtomicU64,
    audit_append_micros: AtomicU64,
    audit_append_max_micros: AtomicU64,
    audit_failures: AtomicU64,
    notify_failures: AtomicU64,
    notify_sent: AtomicU64,
    accept_errors: AtomicU64,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    let mut m = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *m.entry(key).or_default() += 1;
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// A request on a route finished with a status.
    pub fn request(&self, route: &str, status: u16) {
        bump(&self.requests, (route.to_owned(), status));
    }
    /// A refusal, by reason code.
    pub fn denial(&self, reason: &str) {
        bump(&self.denials, reason.to_owned());
    }
    /// A rejected reload of `file`.
    pub fn config_rejected(&self, file: &str) {
        bump(&self.config_rejections, file.to_owned());
    }
    /// A grant issued.
    pub fn grant(&self) {
        self.grants.fetch_add(1, Ordering::Relaxed);
    }
    /// Bytes relayed.
    pub fn bytes(&self, inbound: u64, outbound: u64) {
        self.upstream_bytes_in.fetch_add(inbound, Ordering::Relaxed);
        self.upstream_bytes_out
            .fetch_add(outbound, Ordering::Relaxed);
    }
    /// An audit append took `micros`.
    pub fn audit_append(&self, micros: u64, ok: bool) {
        self.audit_appends.fetch_add(1, Ordering::Relaxed);
        self.audit_append_micros
            .fetch_add(micros, Ordering::Relaxed);
        self.audit_append_max_micros
            .fetch_max(micros, Ordering::Relaxed);
        if !ok {
            self.audit_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
    /// `accept` failed (out of file descriptors, mostly).
    pub fn accept_error(&self) {
        self.accept_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The connection and handshake-refusal figures of the admission control.
    pub fn render_admission(&self, admission: &crate::server::admission::Admission) -> String {
        let mut out = format!(
            "# HELP bglass_connections_open Open client connections.\n# TYPE bglass_connections_open gauge\nbglass_connections_open {}\n",
            admission.open()
        );
        out.push_str("# HELP bglass_connections_refused_total Connections closed at accept, by reason.\n# TYPE bglass_connections_refused_total counter\n");
        for (turned, n) in admission.counts() {
            out.push_str(&format!(
                "bglass_connections_refused_total{{reason=\"{}\"}} {n}\n",
                turned.label()
            ));
        }
        out.push_str(&format!(
            "# HELP bglass_accept_errors_total Failed accepts (the listener backs off).\n# TYPE bglass_accept_errors_total counter\nbglass_accept_errors_total {}\n",
            self.accept_errors.load(Ordering::Relaxed)
        ));
        out.push_str(&format!(
            "# HELP bglass_handshake_refusals_summarised_total Refused handshakes recorded only in per-minute summaries.\n# TYPE bglass_handshake_refusals_summarised_total counter\nbglass_handshake_refusals_summarised_total {}\n",
            admission.summarised()
        ));
        out
    }

    /// A notification delivered, or a delivery attempt that failed.
    pub fn notify(&self, ok: bool) {
        if ok {
            self.notify_sent.fetch_add(1, Ordering::Relaxed);
        } else {
            self.notify_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The canary's view of each pathway (`bglass canary` reports): whether its last probe
    /// passed, and how long ago one last passed (absent until one has).
    pub fn render_canary(
        canary: &BTreeMap<bglass_core::id::ServiceName, bglass_core::api::CanaryStatus>,
        now_ms: u64,
    ) -> String {
        let mut out = String::from(
            "# HELP bglass_canary_ok 1 when the last canary probe of the pathway to a service passed.\n# TYPE bglass_canary_ok gauge\n",
        );
        for (service, c) in canary {
            out.push_str(&format!(
                "bglass_canary_ok{{service=\"{}\"}} {}\n",
                escape(service.as_str()),
                u8::from(c.probe.ok)
            ));
        }
        out.push_str("# HELP bglass_canary_last_success_age_seconds Seconds since a canary probe of the pathway to a service last passed.\n# TYPE bglass_canary_last_success_age_seconds gauge\n");
        for (service, c) in canary {
            if let Some(ok_ms) = c.last_ok_ms {
                out.push_str(&format!(
                    "bglass_canary_last_success_age_seconds{{service=\"{}\"}} {:.3}\n",
                    escape(service.as_str()),
                    now_ms.saturating_sub(ok_ms) as f64 / 1000.0
                ));
            }
        }
        out
    }

    /// The Prometheus text exposition. `health` is (service, up) and `log_size` the entries.
    pub fn render(
        &self,
        health: &[(String, Option<bool>)],
        log_size: u64,
        audit_failed: bool,
    ) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, rows: Vec<(String, u64)>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for (labels, v) in rows {
                out.push_str(&format!("{name}{labels} {v}\n"));
            }
        };
        let lock = |m: &Mutex<BTreeMap<String, u64>>| {
            m.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect::<Vec<_>>()
        };
        let requests: Vec<(String, u64)> = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|((route, status), v)| {
                (
                    format!("{{route=\"{}\",status=\"{status}\"}}", escape(route)),
                    *v,
                )
            })
            .collect();
        counter(
            "bglass_requests_total",
            "HTTP requests answered, by route and status.",
            requests,
        );
        counter(
            "bglass_grants_total",
            "Grants issued.",
            vec![(String::new(), self.grants.load(Ordering::Relaxed))],
        );
        counter(
            "bglass_denials_total",
            "Refusals, by reason code.",
            lock(&self.denials)
                .into_iter()
                .map(|(k, v)| (format!("{{reason=\"{}\"}}", escape(&k)), v))
                .collect(),
        );
        counter(
            "bglass_config_rejections_total",
            "Rejected catalog or roster reloads (the last good version was kept).",
            lock(&self.config_rejections)
                .into_iter()
                .map(|(k, v)| (format!("{{file=\"{}\"}}", escape(&k)), v))
                .collect(),
        );
        counter(
            "bglass_upstream_bytes_total",
            "Body bytes relayed on the data plane.",
            vec![
                (
                    "{direction=\"to_upstream\"}".to_owned(),
                    self.upstream_bytes_in.load(Ordering::Relaxed),
                ),
                (
                    "{direction=\"to_client\"}".to_owned(),
                    self.upstream_bytes_out.load(Ordering::Relaxed),
                ),
            ],
        );
        counter(
            "bglass_audit_appends_total",
            "Audit log appends.",
            vec![(String::new(), self.audit_appends.load(Ordering::Relaxed))],
        );
        counter(
            "bglass_audit_append_failures_total",
            "Audit log appends that failed (access is then refused).",
            vec![(String::new(), self.audit_failures.load(Ordering::Relaxed))],
        );
        out.push_str(&format!(
            "# HELP bglass_audit_append_seconds_sum Total time spent waiting for durable appends.\n# TYPE bglass_audit_append_seconds_sum counter\nbglass_audit_append_seconds_sum {}\n",
            self.audit_append_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
        out.push_str(&format!(
            "# HELP bglass_audit_append_seconds_max Longest durable append.\n# TYPE bglass_audit_append_seconds_max gauge\nbglass_audit_append_seconds_max {}\n",
            self.audit_append_max_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
        out.push_str(&format!(
            "# HELP bglass_audit_log_entries Entries in the audit log.\n# TYPE bglass_audit_log_entries gauge\nbglass_audit_log_entries {log_size}\n"
        ));
        out.push_str(&format!(
            "# HELP bglass_audit_failed 1 when the audit log failed and access is refused.\n# TYPE bglass_audit_failed gauge\nbglass_audit_failed {}\n",
            u8::from(audit_failed)
        ));
        out.push_str("# HELP bglass_service_up Health of each catalog service (1 up, 0 down; informational).\n# TYPE bglass_service_up gauge\n");
        for (service, up) in health {
            if let Some(up) = up {
                out.push_str(&format!(
                    "bglass_service_up{{service=\"{}\"}} {}\n",
                    escape(service),
                    u8::from(*up)
                ));
            }
        }
        out.push_str(&format!(
            "# HELP bglass_notifications_total Notification deliveries, by result.\n# TYPE bglass_notifications_total counter\nbglass_notifications_total{{result=\"sent\"}} {}\nbglass_notifications_total{{result=\"failed\"}} {}\n",
            self.notify_sent.load(Ordering::Relaxed),
            self.notify_failures.load(Ordering::Relaxed)
        ));
        out
    }
}
