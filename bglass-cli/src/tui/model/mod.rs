//! The console's state as a pure value: events in (keys, ticks of the clock, what the
//! proxies answered, how an action ended), state and commands out. Nothing here touches a
//! terminal, a socket or the clock, so every view and every key is tested without either.

use bglass_core::api::{GrantView, RequestView, ServiceStatus};
use bglass_core::drill::LivePlan;
use bglass_core::id::{GrantId, RequestId, ResponderId, ServiceName};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// The views, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Each proxy's reachability, latency, log and split-view state.
    Proxies,
    /// The catalog's tools, their health and the grant you hold.
    Services,
    /// Requests waiting for you, and your own pending ones.
    Requests,
    /// Grants: yours with the time left, and (approvers) everyone's active ones.
    Grants,
    /// The live drill.
    Drill,
}

impl Tab {
    /// Every tab, in order.
    pub const ALL: [Tab; 5] = [
        Tab::Proxies,
        Tab::Services,
        Tab::Requests,
        Tab::Grants,
        Tab::Drill,
    ];

    /// The tab's title.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Proxies => "Proxies",
            Tab::Services => "Services",
            Tab::Requests => "Requests",
            Tab::Grants => "Grants",
            Tab::Drill => "Drill",
        }
    }

    fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

/// What one proxy answered in one round of polling.
#[derive(Debug, Clone, Default)]
pub struct ProxyData {
    /// Its id (as it named itself at contact).
    pub id: String,
    /// Your roles on it.
    pub roles: Vec<String>,
    /// Entries in its audit log.
    pub log_size: u64,
    /// Its audit log's failure, if it failed.
    pub audit_failure: Option<String>,
    /// The catalog's services and their health.
    pub services: Vec<ServiceStatus>,
    /// Pending requests it shows you (approvers: everyone's).
    pub requests: Vec<RequestView>,
    /// Grants it shows you.
    pub grants: Vec<GrantView>,
    /// The live drill, if one runs: its plan and when it started (Unix ms).
    pub drill: Option<(LivePlan, u64)>,
}

/// The outcome of one round of polling one proxy.
#[derive(Debug, Clone)]
pub enum PollOutcome {
    /// It answered.
    Answered {
        /// What it said.
        data: Box<ProxyData>,
        /// Round-trip of its status call, ms.
        latency_ms: u64,
        /// The size of the checkpoint last verified against what this machine saw before.
        checkpoint_size: Option<u64>,
        /// A checkpoint was verified in this round.
        checkpoint_checked: bool,
    },
    /// It did not answer (or could not be trusted): why.
    Failed {
        /// Why, in a few words.
        why: String,
        /// It was refused as a split view (its log does not extend what was seen before).
        split_view: bool,
    },
}

/// One proxy as the console shows it.
#[derive(Debug, Clone)]
pub struct ProxyState {
    /// Its URL.
    pub url: String,
    /// The last data it gave (kept when it stops answering: fail stale).
    pub data: Option<ProxyData>,
    /// When it last answered, Unix ms.
    pub last_ok_ms: Option<u64>,
    /// Round-trip of its last answer, ms.
    pub latency_ms: Option<u64>,
    /// The checkpoint size last verified.
    pub checkpoint_size: Option<u64>,
    /// When a checkpoint was last verified, Unix ms.
    pub checkpoint_ms: Option<u64>,
    /// Why the last round failed (`None` after an answer).
    pub error: Option<String>,
    /// The last failure was a split view.
    pub split_view: bool,
    /// Polled at least once.
    pub polled: bool,
}

impl ProxyState {
    /// It answered the last round.
    pub fn up(&self) -> bool {
        self.polled && self.error.is_none()
    }
}

/// The access form on the Services view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessForm {
    /// The tool.
    pub service: String,
    /// Why.
    pub reason: String,
    /// The incident.
    pub incident: String,
    /// The lifetime asked for (empty: the catalog's default).
    pub ttl: String,
    /// The emergency bypass.
    pub emergency: bool,
    /// The field being edited: 0 reason, 1 incident, 2 TTL, 3 emergency.
    pub field: usize,
}

/// A text asked for before an action (deny's reason, revoke's reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteInput {
    /// What it is for.
    pub pending: Pending,
    /// The text typed so far.
    pub text: String,
}

/// An action waiting for its note or its confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// Approve a request (on the proxy that holds it).
    Approve {
        /// The request.
        request: RequestId,
        /// Its requester and tool, for the question.
        what: String,
        /// The proxy (index).
        proxy: usize,
    },
    /// Deny a request.
    Deny {
        /// The request.
        request: RequestId,
        /// Its requester and tool.
        what: String,
        /// The proxy.
        proxy: usize,
        /// The reason.
        reason: String,
    },
    /// Revoke a grant.
    Revoke {
        /// The grant.
        grant: GrantId,
        /// Its holder and tool.
        what: String,
        /// The proxy.
        proxy: usize,
        /// The reason.
        reason: String,
    },
    /// Withdraw your own pending request.
    Cancel {
        /// The request.
        request: RequestId,
        /// Its tool.
        what: String,
        /// The proxy.
        proxy: usize,
    },
    /// Ask for access (under the emergency bypass, which needs a confirmation).
    Access(AccessForm),
}

impl Pending {
    /// The question asked before doing it.
    pub fn question(&self) -> String {
        match self {
            Pending::Approve { request, what, .. } => format!("Approve {request} ({what})?"),
            Pending::Deny {
                request,
                what,
                reason,
                ..
            } => format!("Deny {request} ({what}) with reason \"{reason}\"?"),
            Pending::Revoke {
                grant,
                what,
                reason,
                ..
            } => format!("Revoke {grant} ({what}) with reason \"{reason}\"?"),
            Pending::Cancel { request, what, .. } => {
                format!("Withdraw your request {request} ({what})?")
            }
            Pending::Access(form) => format!(
                "EMERGENCY access to {}: no approval, every approver is notified and a review opens. Go?",
                form.service
            ),
        }
    }
}

/// What the keyboard is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Browsing.
    Normal,
    /// The key help.
    Help,
    /// Typing the Services filter.
    Filter,
    /// Filling in the access form.
    Form(AccessForm),
    /// Typing a note for an action.
    Note(NoteInput),
    /// Asking y/n before an action.
    Confirm(Pending),
}

/// An access request this console made and is waiting on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The tool.
    pub service: ServiceName,
    /// The request, once the proxy gave it an id.
    pub request: Option<RequestId>,
    /// Approvals so far.
    pub approved: usize,
    /// Approvals needed.
    pub needed: u8,
    /// When it was asked, Unix ms.
    pub started_ms: u64,
}

/// What the console asks its shell to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Leave.
    Quit,
    /// Poll every proxy now.
    Refresh,
    /// Ring the terminal's bell.
    Bell,
    /// Ask for access and wait for the answer.
    Access {
        /// The tool.
        service: ServiceName,
        /// Why.
        reason: String,
        /// The incident.
        incident: String,
        /// The lifetime (as typed; checked before this command is made).
        ttl: Option<String>,
        /// The emergency bypass.
        emergency: bool,
    },
    /// Approve a request on a proxy.
    Approve {
        /// The request.
        request: RequestId,
        /// The proxy's index.
        proxy: usize,
    },
    /// Deny a request on a proxy.
    Deny {
        /// The request.
        request: RequestId,
        /// Why.
        reason: String,
        /// The proxy's index.
        proxy: usize,
    },
    /// Revoke a grant on a proxy.
    Revoke {
        /// The grant.
        grant: GrantId,
        /// Why.
        reason: String,
        /// The proxy's index.
        proxy: usize,
    },
    /// Withdraw your own pending request on a proxy.
    Cancel {
        /// The request.
        request: RequestId,
        /// The proxy's index.
        proxy: usize,
    },
    /// Hand the terminal to `bglass open SERVICE` (an HTTP tool).
    Open(ServiceName),
    /// Hand the terminal to `bglass ssh SERVICE` (an SSH tool).
    Ssh(ServiceName),
    /// Hand the terminal to `bglass drill join` (the live drill's checklist).
    Join,
}

/// How an access request made from the console went.
#[derive(Debug, Clone)]
pub enum AccessUpdate {
    /// The proxy holds it, pending (with approvals so far).
    Pending(Box<RequestView>),
    /// Granted (the grant is kept with the CLI's state).
    Granted(Box<RequestView>),
    /// Denied, expired, or the wait ended: why.
    Ended {
        /// The tool.
        service: ServiceName,
        /// What to say.
        message: String,
    },
}

/// An event.
#[derive(Debug, Clone)]
pub enum Event {
    /// A key was pressed.
    Key(KeyEvent),
    /// The clock moved (Unix ms).
    Tick(u64),
    /// A proxy was polled.
    Polled {
        /// Its index in the config.
        proxy: usize,
        /// When, Unix ms.
        at_ms: u64,
        /// What came of it.
        outcome: PollOutcome,
    },
    /// An access request moved.
    Access(AccessUpdate),
    /// An action ended: what to say (an error or its result).
    Said(String),
}

/// The console's state.
#[derive(Debug, Clone)]
pub struct Model {
    /// Who you are.
    pub me: ResponderId,
    /// The view shown.
    pub tab: Tab,
    /// The keyboard's mode.
    pub mode: Mode,
    /// The proxies, in the config's order.
    pub proxies: Vec<ProxyState>,
    /// The clock, Unix ms.
    pub now_ms: u64,
    /// The Services filter.
    pub filter: String,
    /// The selected row of each view.
    pub selected: [usize; 5],
    /// Access requests this console waits on.
    pub waiting: Vec<Waiting>,
    /// The last thing said (a result, an error), with when.
    pub message: Option<(String, u64)>,
    /// Colour is allowed (not under `NO_COLOR`).
    pub color: bool,
}

/// A pending request with the proxy that holds it.
#[derive(Debug, Clone)]
pub struct RequestRow<'a> {
    /// The proxy's index.
    pub proxy: usize,
    /// The request.
    pub view: &'a RequestView,
    /// The proxy stopped answering: this is its last known data.
    pub stale: bool,
}

/// A grant with the proxy that issued it.
#[derive(Debug, Clone)]
pub struct GrantRow<'a> {
    /// The proxy's index.
    pub proxy: usize,
    /// The grant.
    pub view: &'a GrantView,
    /// From a proxy that stopped answering.
    pub stale: bool,
}

impl Model {
    /// A console for `me` over the proxies at `urls`, at time `now_ms`.
    pub fn new(me: ResponderId, urls: Vec<String>, now_ms: u64, color: bool) -> Self {
        Self {
            me,
            tab: Tab::Services,
            mode: Mode::Normal,
            proxies: urls
                .into_iter()
                .map(|url| ProxyState {
                    url,
                    data: None,
                    last_ok_ms: None,
                    latency_ms: None,
                    checkpoint_size: None,
                    checkpoint_ms: None,
                    error: None,
                    split_view: false,
                    polled: false,
                })
                .collect(),
            now_ms,
            filter: String::new(),
            selected: [0; 5],
            waiting: Vec::new(),
            message: None,
            color,
        }
    }

    /// The proxy that serves: the first in priority order that answered the last round.
    pub fn serving(&self) -> Option<usize> {
        self.proxies.iter().position(ProxyState::up)
    }

    /// The data to show: the serving proxy's, else the freshest stale one's.
    fn source(&self) -> Option<&ProxyData> {
        if let Some(i) = self.serving() {
            return self.proxies[i].data.as_ref();
        }
        self.proxies
            .iter()
            .filter(|p| p.data.is_some())
            .max_by_key(|p| p.last_ok_ms)
            .and_then(|p| p.data.as_ref())
    }

    /// Your roles (as the serving proxy says).
    pub fn roles(&self) -> Vec<String> {
        self.source().map(|d| d.roles.clone()).unwrap_or_default()
    }

    /// You hold the approver role.
    pub fn is_approver(&self) -> bool {
        self.roles().iter().any(|r| r == "approver")
    }

    /// The age of the data shown when no proxy answers now (fail stale), ms; `None` when a
    /// proxy answers or none ever did.
    pub fn stale_for_ms(&self) -> Option<u64> {
        if self.serving().is_some() {
            return None;
        }
        let newest = self.proxies.iter().filter_map(|p| p.last_ok_ms).max()?;
        Some(self.now_ms.saturating_sub(newest))
    }

    /// The catalog's services, filtered.
    pub fn services(&self) -> Vec<&ServiceStatus> {
        let Some(data) = self.source() else {
            return Vec::new();
        };
        let mut rows: Vec<(i64, &ServiceStatus)> = data
            .services
            .iter()
            .filter_map(|s| fuzzy_score(&self.filter, s.name.as_str()).map(|score| (score, s)))
            .collect();
        if !self.filter.is_empty() {
            rows.sort_by_key(|(score, s)| (std::cmp::Reverse(*score), s.name.as_str()));
        }
        rows.into_iter().map(|(_, s)| s).collect()
    }

    /// Pending requests from every proxy (stale ones marked), oldest first.
    pub fn requests(&self) -> Vec<RequestRow<'_>> {
        let mut rows: Vec<RequestRow<'_>> = self
            .proxies
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.data.as_ref().map(|d| (i, p, d)))
            .flat_map(|(i, p, d)| {
                d.requests
                    .iter()
                    .filter(|r| r.status == "pending")
                    .map(move |view| RequestRow {
                        proxy: i,
                        view,
                        stale: !p.up(),
                    })
            })
            .collect();
        rows.sort_by_key(|r| (r.view.created_ms, r.view.id.as_str().to_owned()));
        rows
    }

    /// Requests waiting for you to decide (not yours).
    pub fn to_decide(&self) -> Vec<RequestRow<'_>> {
        self.requests()
            .into_iter()
            .filter(|r| r.view.responder != self.me)
            .collect()
    }

    /// Your own pending requests.
    pub fn mine_pending(&self) -> Vec<RequestRow<'_>> {
        self.requests()
            .into_iter()
            .filter(|r| r.view.responder == self.me)
            .collect()
    }

    /// Grants from every proxy: yours first (newest first), then others' active ones.
    pub fn grants(&self) -> Vec<GrantRow<'_>> {
        let mut rows: Vec<GrantRow<'_>> = self
            .proxies
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.data.as_ref().map(|d| (i, p, d)))
            .flat_map(|(i, p, d)| {
                d.grants.iter().map(move |view| GrantRow {
                    proxy: i,
                    view,
                    stale: !p.up(),
                })
            })
            .collect();
        let me = &self.me;
        rows.sort_by_key(|g| (g.view.responder != *me, std::cmp::Reverse(g.view.nbf)));
        rows
    }

    /// The live grant you hold for `service`, if any (the one that lasts longest).
    pub fn held(&self, service: &ServiceName) -> Option<&GrantView> {
        let now = self.now_ms / 1000;
        self.grants()
            .into_iter()
            .map(|g| g.view)
            .filter(|g| g.responder == self.me && &g.service == service && self.grant_live(g, now))
            .max_by_key(|g| g.exp)
    }

    /// A grant is live: active and not past its end.
    pub fn grant_live(&self, g: &GrantView, now_s: u64) -> bool {
        g.state == "active" && g.exp > now_s
    }

    /// The live drill, if one runs.
    pub fn drill(&self) -> Option<&(LivePlan, u64)> {
        self.source().and_then(|d| d.drill.as_ref())
    }

    fn rows(&self, tab: Tab) -> usize {
        match tab {
            Tab::Proxies => self.proxies.len(),
            Tab::Services => self.services().len(),
            Tab::Requests => self.to_decide().len() + self.mine_pending().len(),
            Tab::Grants => self.grants().len(),
            Tab::Drill => 0,
        }
    }

    /// The selected row of the current view, clamped to its rows.
    pub fn selection(&self) -> usize {
        let rows = self.rows(self.tab);
        self.selected[self.tab.index()].min(rows.saturating_sub(1))
    }

    fn say(&mut self, text: impl Into<String>) {
        self.message = Some((text.into(), self.now_ms));
    }

    /// Applies an event; returns what the shell must do.
    pub fn update(&mut self, event: Event) -> Vec<Command> {
        match event {
            Event::Tick(now) => {
                self.now_ms = now;
                Vec::new()
            }
            Event::Polled {
                proxy,
                at_ms,
                outcome,
            } => {
                self.polled(proxy, at_ms, outcome);
                Vec::new()
            }
            Event::Access(update) => self.access_update(update),
            Event::Said(text) => {
                self.say(text);
                Vec::new()
            }
            Event::Key(key) => self.key(key),
        }
    }

    fn polled(&mut self, proxy: usize, at_ms: u64, outcome: PollOutcome) {
        let Some(p) = self.proxies.get_mut(proxy) else {
            return;
        };
        p.polled = true;
        match outcome {
            PollOutcome::Answered {
                data,
                latency_ms,
                checkpoint_size,
                checkpoint_checked,
            } => {
                p.data = Some(*data);
                p.last_ok_ms = Some(at_ms);
                p.latency_ms = Some(latency_ms);
                p.error = None;
                p.split_view = false;
                if checkpoint_size.is_some() {
                    p.checkpoint_size = checkpoint_size;
                }
                if checkpoint_checked {
                    p.checkpoint_ms = Some(at_ms);
                }
            }
            PollOutcome::Failed { why, split_view } => {
                p.error = Some(why);
                p.split_view = split_view;
            }
        }
    }

    fn access_update(&mut self, update: AccessUpdate) -> Vec<Command> {
        match update {
            AccessUpdate::Pending(view) => {
                if let Some(w) = self.waiting.iter_mut().find(|w| {
                    w.service == view.service && w.request.as_ref().is_none_or(|r| *r == view.id)
                }) {
                    w.request = Some(view.id.clone());
                    w.approved = view.approved_by.len();
                    w.needed = view.approvals_needed;
                }
                Vec::new()
            }
            AccessUpdate::Granted(view) => {
                self.waiting.retain(|w| w.service != view.service);
                let until = view
                    .grant
                    .as_ref()
                    .map(|g| {
                        format!(
                            " for {}",
                            clock_left(g.exp.saturating_sub(self.now_ms / 1000))
                        )
                    })
                    .unwrap_or_default();
                self.say(format!("GRANTED: {} ({}){until}", view.service, view.id));
                vec![Command::Bell, Command::Refresh]
            }
            AccessUpdate::Ended { service, message } => {
                self.waiting.retain(|w| w.service != service);
                self.say(message);
                vec![Command::Bell, Command::Refresh]
            }
        }
    }
}

/// A grant's state as shown: `active`, `expired` (also when past its end but not yet
/// marked), or `revoked`.
pub fn shown_state(g: &GrantView, now_s: u64) -> &str {
    if g.state == "active" && g.exp <= now_s {
        "expired"
    } else {
        &g.state
    }
}

/// Time left as `12:04` (minutes:seconds), or `1h02:04`.
pub fn clock_left(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}h{:02}:{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
    } else {
        format!("{:02}:{:02}", secs / 60, secs % 60)
    }
}

/// An age as `4s`, `3m`, `2h`.
pub fn age(ms: u64) -> String {
    let s = ms / 1000;
    if s < 120 {
        format!("{s}s")
    } else if s < 7200 {
        format!("{}m", s / 60)
    } else {
        format!("{}h", s / 3600)
    }
}

/// A fuzzy match of `pattern` in `name`: every character of the pattern in order
/// (case-insensitive). Higher scores for contiguous runs and an early start; `None` when
/// it does not match. The empty pattern matches everything equally.
pub fn fuzzy_score(pattern: &str, name: &str) -> Option<i64> {
    let mut score = 0i64;
    let mut last: Option<usize> = None;
    let lower: Vec<char> = name.chars().flat_map(char::to_lowercase).collect();
    let mut from = 0;
    for p in pattern.chars().flat_map(char::to_lowercase) {
        let at = lower.iter().skip(from).position(|c| *c == p)? + from;
        score += match last {
            Some(l) if l + 1 == at => 10,
            None if at == 0 => 8,
            _ => 1,
        };
        last = Some(at);
        from = at + 1;
    }
    Some(score)
}

mod keys;
#[cfg(test)]
mod tests;
