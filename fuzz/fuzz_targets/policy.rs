//! Fuzz the access policy: the input is a sequence of actions (access requests with a TTL
//! and the emergency flag, approvals, denials, withdrawals by the requester, revocations,
//! reviews, resent envelopes, clock advances, the proxy's expiry and roster tasks, roster
//! changes, restarts) by the
//! responders of a fixed roster over a fixed catalog. Each action goes through the real
//! envelope, `State::decide`, `State::apply` and `State::replay`, as the proxy runs them,
//! and after every step the invariants of the policy are checked against a model kept here:
//! no grant without the service's number of distinct approvals from approvers in the roster
//! other than the requester (unless under an emergency bypass the service allows); never
//! self-approved; TTL within the service's maximum (and the emergency TTL for a bypass);
//! a revoked or expired grant is never live; a request is granted once, and never after its
//! requester withdrew it (only the requester can, only while pending); a resent envelope
//! is never accepted; a restart rebuilds the state the proxy had. A violation panics.
#![no_main]

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use bglass_core::audit::event::{EVENT_VERSION, Event, EventKind, StoredEnvelope};
use bglass_core::catalog::Catalog;
use bglass_core::duration::HumanDuration;
use bglass_core::envelope::{
    AccessRequest, Action, DecodedEnvelope, ENVELOPE_VERSION, Nonce, RequestPayload, seal,
};
use bglass_core::grant::GrantVerifier;
use bglass_core::id::{GrantId, ProxyId, RequestId, ResponderId, ServiceName};
use bglass_core::keys::{PublicKey, SigningKey};
use bglass_core::policy::{Context, REQUEST_EXPIRED, Refusal, State, envelope_refusal};
use bglass_core::roster::{Responder, Role, Roster};
use libfuzzer_sys::fuzz_target;

#[path = "policy/invariants.rs"]
mod invariants;

use invariants::{ModelGrant, ModelRequest};

/// 2026-01-01T00:00:00Z: the clock starts here and only moves forward, by bounded steps.
const T0_MS: u64 = 1_767_225_600_000;
/// The proxy's default `limits.request_ttl` (1 h).
const REQUEST_TTL_MS: u64 = 3_600_000;
/// Actions per input.
const MAX_STEPS: usize = 128;

/// Approvals 0, 1 and 2, with and without the emergency bypass (which needs approvals to
/// skip), and various maximum TTLs.
const CATALOG: &str = r#"version = 1

[[service]]
name = "open"
kind = "tcp"
description = "No approval"
upstream = "127.0.0.1:20001"
max_ttl = "4h"
default_ttl = "1h"
approvals = 0
probe = "connect"

[[service]]
name = "one-short"
kind = "tcp"
probe = "connect"
description = "One approval, short grants, emergency bypass"
upstream = "127.0.0.1:20002"
max_ttl = "10m"
default_ttl = "5m"
approvals = 1
emergency_bypass = true
emergency_ttl = "10m"

[[service]]
name = "one"
kind = "tcp"
description = "One approval"
upstream = "127.0.0.1:20003"
max_ttl = "2h"
default_ttl = "1h"
approvals = 1
probe = "connect"

[[service]]
name = "one-bypass"
kind = "tcp"
probe = "connect"
description = "One approval, emergency bypass"
upstream = "127.0.0.1:20004"
max_ttl = "8h"
default_ttl = "1h"
approvals = 1
emergency_bypass = true
emergency_ttl = "15m"

[[service]]
name = "two"
kind = "tcp"
description = "Two approvals"
upstream = "127.0.0.1:20005"
max_ttl = "30m"
default_ttl = "15m"
approvals = 2
probe = "connect"

[[service]]
name = "two-bypass"
kind = "tcp"
probe = "connect"
description = "Two approvals, emergency bypass"
upstream = "127.0.0.1:20006"
max_ttl = "24h"
default_ttl = "4h"
approvals = 2
emergency_bypass = true
emergency_ttl = "5m"
"#;

/// Requested TTLs, seconds (0: none, the catalog's default); some above every maximum.
const TTLS: [u64; 10] = [0, 60, 300, 600, 900, 1800, 3600, 7200, 28_800, 86_400];
/// Clock advances, ms: around the freshness window, the request TTL and grant lengths.
const ADVANCES: [u64; 12] = [
    1, 999, 1_000, 30_000, 299_000, 301_000, 600_000, 900_000, 1_799_999, 3_600_000, 7_200_000,
    86_400_000,
];

/// Who the roster can hold: (id, roles).
const PEOPLE: [(&str, &[Role]); 6] = [
    ("alice", &[Role::Responder, Role::Approver]),
    ("bob", &[Role::Responder, Role::Approver]),
    ("carol", &[Role::Responder, Role::Approver]),
    ("dave", &[Role::Responder]),
    ("erin", &[Role::Approver]),
    ("frank", &[Role::Auditor]),
];

/// The input, read a byte at a time; the actions end with it.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }
}

/// One person: their current key (roster changes can replace it) and whether the roster
/// holds them, with which roles.
struct Person {
    id: ResponderId,
    key: &'static SigningKey,
    generation: u8,
    present: bool,
    approver: bool,
}

impl Person {
    fn entry(&self, index: usize) -> Responder {
        let roles = PEOPLE[index]
            .1
            .iter()
            .copied()
            .filter(|r| *r != Role::Approver || self.approver)
            .collect();
        Responder {
            id: self.id.clone(),
            name: self.id.to_string(),
            key: self.key.public_key(),
            roles,
        }
    }
}

struct World {
    proxy: ProxyId,
    key: &'static SigningKey,
    verifier: GrantVerifier,
    catalog: Catalog,
    people: Vec<Person>,
    roster: Roster,
    state: State,
    /// The audit log: every appended event's bytes, in order.
    log: Vec<Vec<u8>>,
    /// Events appended by `record` (refusals, expiries, revocations of departed holders)
    /// that the proxy applies to its state only once durable: other decisions can come
    /// between their append and their application.
    unapplied: Vec<(u64, Event)>,
    now_ms: u64,
    nonces: u64,
    /// Every envelope sent, with the key of the connection that sent it.
    sent: Vec<(Vec<u8>, PublicKey)>,
    requests: HashMap<RequestId, ModelRequest>,
    request_order: Vec<RequestId>,
    grants: HashMap<GrantId, ModelGrant>,
    grant_order: Vec<GrantId>,
}

/// What every input starts from, made once: the proxy's key, the catalog, and every key
/// each person can have (`KEYS_PER_PERSON` generations, changed by roster changes).
struct Fixed {
    proxy_key: SigningKey,
    catalog: Catalog,
    keys: Vec<Vec<SigningKey>>,
}

/// Keys each person can go through.
const KEYS_PER_PERSON: u8 = 8;

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| Fixed {
        proxy_key: SigningKey::from_seed(&[200; 32]).expect("proxy key"),
        catalog: Catalog::from_bytes(Path::new("services.toml"), CATALOG.as_bytes().to_vec())
            .expect("the fixed catalog is valid"),
        keys: (0..PEOPLE.len())
            .map(|person| {
                (0..KEYS_PER_PERSON)
                    .map(|generation| {
                        let mut seed = [0u8; 32];
                        seed[0] = u8::try_from(person).expect("few people") + 1;
                        seed[1] = generation;
                        SigningKey::from_seed(&seed).expect("responder key")
                    })
                    .collect()
            })
            .collect(),
    })
}

impl World {
    fn new() -> Self {
        let fixed = fixed();
        let key = &fixed.proxy_key;
        let proxy = ProxyId::new("proxy-a").expect("proxy id");
        let catalog = fixed.catalog.clone();
        let people: Vec<Person> = PEOPLE
            .iter()
            .enumerate()
            .map(|(i, (id, _))| Person {
                id: ResponderId::new(id).expect("responder id"),
                key: &fixed.keys[i][0],
                generation: 0,
                present: true,
                approver: true,
            })
            .collect();
        let mut world = Self {
            verifier: GrantVerifier::new(proxy.clone(), key.public_key()),
            proxy,
            key,
            catalog,
            people,
            roster: Roster::from_entries(Vec::new()).expect("empty roster"),
            state: State::new(),
            log: Vec::new(),
            unapplied: Vec::new(),
            now_ms: T0_MS,
            nonces: 0,
            sent: Vec::new(),
            requests: HashMap::new(),
            request_order: Vec::new(),
            grants: HashMap::new(),
            grant_order: Vec::new(),
        };
        world.roster = world.roster_now().expect("the fixed roster is valid");
        world
    }

    fn roster_now(&self) -> Option<Roster> {
        let entries = self
            .people
            .iter()
            .enumerate()
            .filter(|(_, p)| p.present)
            .map(|(i, p)| p.entry(i))
            .collect();
        Roster::from_entries(entries).ok()
    }

    fn event(&self, actor: Option<ResponderId>, kind: EventKind, drill: Option<String>) -> Event {
        Event {
            v: EVENT_VERSION,
            time_ms: self.now_ms,
            proxy: self.proxy.clone(),
            actor,
            drill,
            event: kind,
        }
    }

    /// Appends an event to the log, checking it against the model first.
    fn append(&mut self, event: &Event) -> u64 {
        self.observe(event);
        let index = self.log.len() as u64;
        self.log.push(event.to_bytes().expect("an event encodes"));
        index
    }

    /// As the proxy's `record`: appended now, applied to the state once durable (at the
    /// next background step, or before a restart).
    fn record(&mut self, actor: Option<ResponderId>, kind: EventKind) {
        let drill = self.state.drill_tag(&kind);
        let event = self.event(actor, kind, drill);
        let index = self.append(&event);
        self.unapplied.push((index, event));
    }

    fn durable(&mut self) {
        for (index, event) in std::mem::take(&mut self.unapplied) {
            self.apply(index, &event);
        }
    }

    /// Applies an event to the state; from then on an ended grant must not be live.
    fn apply(&mut self, index: u64, event: &Event) {
        self.state.apply(index, event);
        if let EventKind::Revoke { grant, .. } | EventKind::Expiry { grant } = &event.event
            && let Some(g) = self.grants.get_mut(grant)
        {
            g.ended = true;
        }
    }

    /// A refusal, recorded as the proxy records it.
    fn refuse(&mut self, actor: Option<ResponderId>, refusal: &Refusal, about: About) {
        let kind = EventKind::Denial {
            reason: refusal.code.to_owned(),
            detail: refusal.message.clone(),
            request: about.request,
            service: about.service,
            grant: about.grant,
            envelope: about.envelope,
        };
        self.record(actor, kind);
    }

    /// Signs `action` as person `who` and sends it over their connection.
    fn act(&mut self, who: usize, action: Action) {
        let person = &self.people[who];
        if !person.present {
            // The handshake refuses a key the roster does not hold.
            return;
        }
        self.nonces += 1;
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.nonces.to_be_bytes());
        let payload = RequestPayload {
            v: ENVELOPE_VERSION,
            responder: person.id.clone(),
            key: person.key.public_key(),
            aud: self.proxy.clone(),
            iat: self.now_ms / 1000,
            nonce: Nonce::from_bytes(nonce),
            action,
        };
        let bytes = seal(&payload, person.key).expect("an envelope seals");
        let connection = person.key.public_key();
        self.mutate(&bytes, &connection);
        self.sent.push((bytes, connection));
    }

    /// The control API's mutation, as the proxy runs it: the connection's responder, the
    /// envelope decoded and verified, then the decision; its events applied at once and
    /// appended in the same order; a refusal recorded. Returns whether events were
    /// appended.
    fn mutate(&mut self, bytes: &[u8], connection: &PublicKey) -> bool {
        let Some(caller) = self.roster.by_key(connection).cloned() else {
            return false;
        };
        let now_s = self.now_ms / 1000;
        let decoded = match DecodedEnvelope::decode(bytes) {
            Ok(d) => d,
            Err(e) => {
                self.refuse(Some(caller.id), &envelope_refusal(&e), About::default());
                return false;
            }
        };
        let claimed = self.roster.get(decoded.claimed_responder()).map(|r| r.key);
        let verified = match decoded.verify(claimed.as_ref(), Some(connection), &self.proxy, now_s)
        {
            Ok(v) => v,
            Err(e) => {
                self.refuse(Some(caller.id), &envelope_refusal(&e), About::default());
                return false;
            }
        };
        let stored: StoredEnvelope =
            serde_json::from_value(verified.to_json()).expect("a verified envelope stores");
        let action = verified.payload().action.clone();
        let mut about = About {
            envelope: Some(stored.clone()),
            ..About::default()
        };
        match &action {
            Action::Access(a) => about.service = Some(a.service.clone()),
            Action::Approve { request }
            | Action::Deny { request, .. }
            | Action::Cancel { request } => about.request = Some(request.clone()),
            Action::Revoke { grant, .. } | Action::Review { grant, .. } => {
                about.grant = Some(grant.clone())
            }
            _ => {}
        }
        let ctx = Context {
            proxy: &self.proxy,
            key: self.key,
            catalog: &self.catalog,
            roster: &self.roster,
            caller: &caller,
            now_ms: self.now_ms,
        };
        match self.state.decide(&ctx, &verified, stored) {
            Ok(kinds) => {
                assert!(!kinds.is_empty(), "a decision with no event");
                let drill = self.state.drill_of(&action);
                for (actor, kind) in kinds {
                    let event = self.event(actor, kind, drill.clone());
                    let index = self.append(&event);
                    self.apply(u64::MAX, &event);
                    if let EventKind::Grant { grant, .. } = &event.event
                        && let Some(g) = self.state.grants.get_mut(grant)
                    {
                        g.index = index;
                    }
                }
                true
            }
            Err(refusal) => {
                self.refuse(Some(caller.id), &refusal, about);
                false
            }
        }
    }

    /// The proxy's expiry task: pending requests past `request_ttl`, then grants past
    /// their end.
    fn expiries(&mut self) {
        let stale = self.state.due_request_expiries(self.now_ms, REQUEST_TTL_MS);
        for request in stale {
            let (holder, service) = {
                let r = self.state.requests.get(&request);
                (
                    r.map(|r| r.responder.clone()),
                    r.map(|r| r.access.service.clone()),
                )
            };
            let kind = EventKind::Denial {
                reason: REQUEST_EXPIRED.to_owned(),
                detail: "no decision within 1h; the request expired".to_owned(),
                request: Some(request),
                service,
                grant: None,
                envelope: None,
            };
            self.record(holder, kind);
        }
        for grant in self.state.due_expiries(self.now_ms) {
            let holder = self.state.grants.get(&grant).map(|g| g.claims.sub.clone());
            self.record(holder, EventKind::Expiry { grant });
        }
    }

    /// The proxy's roster task: grants whose holder left the roster, or whose key changed,
    /// end.
    fn departed(&mut self) {
        for (grant, holder) in self.state.grants_of_departed(&self.roster, self.now_ms) {
            let kind = EventKind::Revoke {
                grant,
                reason: format!("{holder} is no longer in the roster with this key"),
                envelope: None,
            };
            self.record(None, kind);
        }
    }

    /// A roster change (a reload of `responders.toml`): someone leaves or comes back, loses
    /// or regains the approver role, or gets a new key. A roster that does not load leaves
    /// the last good one in force.
    fn change_roster(&mut self, who: usize, how: u8) {
        let before = (
            self.people[who].present,
            self.people[who].approver,
            self.people[who].generation,
        );
        let p = &mut self.people[who];
        match how % 4 {
            0 => p.present = false,
            1 => p.present = true,
            2 => p.approver = !p.approver,
            _ => {
                p.generation = (p.generation + 1) % KEYS_PER_PERSON;
                p.key = &fixed().keys[who][usize::from(p.generation)];
            }
        }
        match self.roster_now() {
            Some(roster) => self.roster = roster,
            None => {
                let p = &mut self.people[who];
                (p.present, p.approver, p.generation) = before;
                p.key = &fixed().keys[who][usize::from(p.generation)];
            }
        }
    }

    fn step(&mut self, input: &mut Input<'_>) -> Option<()> {
        let op = input.byte()?;
        let who = usize::from(input.byte()?) % self.people.len();
        let arg = input.byte()?;
        match op % 15 {
            0 | 1 => {
                let services = self.catalog.services();
                let service = services[usize::from(arg) % services.len()].name.clone();
                let ttl = HumanDuration::from_secs(TTLS[usize::from(arg >> 3) % TTLS.len()]);
                let access = AccessRequest {
                    service,
                    ttl,
                    reason: "fuzz".to_owned(),
                    incident: "INC-1".to_owned(),
                    emergency: arg & 0x80 != 0,
                    drill: None,
                    canary: false,
                };
                self.act(who, Action::Access(access));
            }
            2 | 3 => {
                if let Some(request) = pick(&self.request_order, arg) {
                    self.act(who, Action::Approve { request });
                }
            }
            4 => {
                if let Some(request) = pick(&self.request_order, arg) {
                    let reason = "no".to_owned();
                    self.act(who, Action::Deny { request, reason });
                }
            }
            5 => {
                if let Some(grant) = pick(&self.grant_order, arg) {
                    let reason = "done".to_owned();
                    self.act(who, Action::Revoke { grant, reason });
                }
            }
            6 => {
                if let Some(grant) = pick(&self.grant_order, arg) {
                    let note = "fine".to_owned();
                    self.act(who, Action::Review { grant, note });
                }
            }
            7 => self.now_ms += ADVANCES[usize::from(arg) % ADVANCES.len()],
            8 => {
                self.durable();
                self.expiries();
            }
            9 => self.change_roster(who, arg),
            10 => {
                self.durable();
                self.departed();
            }
            11 => {
                if let Some((bytes, connection)) = pick(&self.sent, arg) {
                    let accepted = self.mutate(&bytes, &connection);
                    assert!(!accepted, "a resent envelope was accepted");
                }
            }
            12 => self.durable(),
            13 => {
                if let Some(request) = pick(&self.request_order, arg) {
                    self.act(who, Action::Cancel { request });
                }
            }
            _ => self.restart(),
        }
        Some(())
    }
}

/// What a refusal concerned (the proxy's `Denied`).
#[derive(Default)]
struct About {
    request: Option<RequestId>,
    service: Option<ServiceName>,
    grant: Option<GrantId>,
    envelope: Option<StoredEnvelope>,
}

fn pick<T: Clone>(items: &[T], arg: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[usize::from(arg) % items.len()].clone())
}

fuzz_target!(|data: &[u8]| {
    let mut world = World::new();
    let mut input = Input(data);
    for _ in 0..MAX_STEPS {
        if world.step(&mut input).is_none() {
            break;
        }
        world.check();
    }
    world.restart();
    world.check();
});
