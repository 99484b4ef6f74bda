//! Judging a drill: every expectation of the scenario, and the two that always apply (an
//! access was attempted; every log verifies and every access is in it), each with what
//! actually happened.

use super::scorecard::{LogCheck, Outcome, Scorecard};
use super::stats::percent;
use crate::scenario::Expectations;

impl Scorecard {
    /// Every expectation with its outcome. Two always apply: the audit logs verify, and
    /// there was something to score.
    pub(super) fn judge(&self, expect: &Expectations) -> Vec<Outcome> {
        let mut out = Vec::new();
        out.push(Outcome {
            expectation: "at least one access attempted".to_owned(),
            actual: format!("{} accesses", self.accesses),
            met: self.accesses > 0,
        });
        let bad_logs: Vec<&LogCheck> = self.audit.logs.iter().filter(|l| !l.verified).collect();
        out.push(Outcome {
            expectation: "every proxy's audit log verifies".to_owned(),
            actual: if bad_logs.is_empty() {
                format!("{} log(s) verified", self.audit.logs.len())
            } else {
                bad_logs
                    .iter()
                    .map(|l| format!("{}: {}", l.proxy, l.error.clone().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
            met: bad_logs.is_empty() && !self.audit.logs.is_empty(),
        });
        if let Some(min) = expect.success_rate {
            out.push(Outcome {
                expectation: format!("success rate >= {}", percent(min)),
                actual: format!(
                    "{} ({} of {})",
                    percent(self.success_rate),
                    self.succeeded,
                    self.accesses
                ),
                met: self.success_rate + 1e-9 >= min,
            });
        }
        if let Some(max) = expect.tta_p95 {
            out.push(Outcome {
                expectation: format!("time to access p95 <= {max}"),
                actual: format!("{} ms", self.tta.p95),
                met: self.tta.count > 0 && self.tta.p95 <= max.as_ms(),
            });
        }
        if let Some(max) = expect.approval_p95 {
            out.push(Outcome {
                expectation: format!("approval latency p95 <= {max}"),
                actual: if self.approvals.count == 0 {
                    "no approvals".to_owned()
                } else {
                    format!("{} ms", self.approvals.p95)
                },
                met: self.approvals.p95 <= max.as_ms(),
            });
        }
        out.push(Outcome {
            expectation: format!("unaudited accesses <= {}", expect.unaudited),
            actual: format!(
                "{} unaudited, {} uses outside grants ({} of {} found in the log)",
                self.audit.unaudited,
                self.audit.uses_outside_grants,
                self.audit.found,
                self.audit.checked
            ),
            met: self.audit.unaudited <= expect.unaudited
                && self.audit.uses_outside_grants == 0
                && self.audit.checked == self.succeeded,
        });
        if let Some(want) = expect.failover {
            out.push(Outcome {
                expectation: if want {
                    "failover to another proxy seen".to_owned()
                } else {
                    "no failover".to_owned()
                },
                actual: format!("{} accesses served after failover", self.failovers),
                met: want == (self.failovers > 0),
            });
        }
        for t in &expect.tools {
            let score = self
                .tools
                .iter()
                .find(|s| s.service == t.name.value.as_str());
            if let Some(min) = t.success_rate {
                out.push(Outcome {
                    expectation: format!("{}: success rate >= {}", t.name.value, percent(min)),
                    actual: score
                        .map_or_else(|| "not exercised".to_owned(), |s| percent(s.success_rate)),
                    met: score.is_some_and(|s| s.accesses > 0 && s.success_rate + 1e-9 >= min),
                });
            }
            if let Some(max) = t.tta_p95 {
                out.push(Outcome {
                    expectation: format!("{}: time to access p95 <= {max}", t.name.value),
                    actual: score.map_or_else(
                        || "not exercised".to_owned(),
                        |s| format!("{} ms", s.tta.p95),
                    ),
                    met: score.is_some_and(|s| s.tta.count > 0 && s.tta.p95 <= max.as_ms()),
                });
            }
        }
        out
    }
}
