//! How the console answers a key: the key bindings of each view, the access form, notes
//! and confirmations (the rest of the model is in `mod.rs`).

use super::*;

impl Model {
    pub(super) fn key(&mut self, key: KeyEvent) -> Vec<Command> {
        if key.kind != crossterm::event::KeyEventKind::Press {
            return Vec::new();
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return vec![Command::Quit];
        }
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => self.normal_key(key),
            Mode::Help => Vec::new(),
            Mode::Filter => {
                match key.code {
                    KeyCode::Esc => self.filter.clear(),
                    KeyCode::Enter => {}
                    KeyCode::Backspace => {
                        self.filter.pop();
                        self.mode = Mode::Filter;
                    }
                    KeyCode::Char(c) if !c.is_control() => {
                        self.filter.push(c);
                        self.selected[Tab::Services.index()] = 0;
                        self.mode = Mode::Filter;
                    }
                    _ => self.mode = Mode::Filter,
                }
                Vec::new()
            }
            Mode::Form(form) => self.form_key(form, key),
            Mode::Note(note) => self.note_key(note, key),
            Mode::Confirm(pending) => match key.code {
                KeyCode::Char('y' | 'Y') => self.confirmed(pending),
                _ => {
                    self.say("cancelled");
                    Vec::new()
                }
            },
        }
    }

    fn normal_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let tab = self.tab.index();
        match key.code {
            KeyCode::Char('q') => return vec![Command::Quit],
            KeyCode::Char('?') => self.mode = Mode::Help,
            KeyCode::Char('r') => return vec![Command::Refresh],
            KeyCode::Tab | KeyCode::Right => self.tab = Tab::ALL[(tab + 1) % Tab::ALL.len()],
            KeyCode::BackTab | KeyCode::Left => {
                self.tab = Tab::ALL[(tab + Tab::ALL.len() - 1) % Tab::ALL.len()];
            }
            KeyCode::Char(c @ '1'..='5') => {
                let n = c as usize - '1' as usize;
                self.tab = Tab::ALL[n];
            }
            KeyCode::Down | KeyCode::Char('j') => {
                let rows = self.rows(self.tab);
                self.selected[tab] = (self.selection() + 1).min(rows.saturating_sub(1));
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.selected[tab] = self.selection().saturating_sub(1);
            }
            KeyCode::Esc if self.tab == Tab::Services => self.filter.clear(),
            _ => return self.view_key(key),
        }
        Vec::new()
    }

    fn view_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let selection = self.selection();
        match (self.tab, key.code) {
            (Tab::Services, KeyCode::Char('/')) => {
                self.mode = Mode::Filter;
            }
            (Tab::Services, KeyCode::Enter) => {
                if let Some(s) = self.services().get(selection) {
                    self.mode = Mode::Form(AccessForm {
                        service: s.name.to_string(),
                        ..AccessForm::default()
                    });
                }
            }
            (Tab::Requests, KeyCode::Char('a' | 'd')) => {
                let decide = self.to_decide();
                let Some(row) = decide.get(selection) else {
                    self.say(
                        "select a request waiting for you (your own cannot be decided by you)",
                    );
                    return Vec::new();
                };
                let request = row.view.id.clone();
                let what = format!("{} wants {}", row.view.responder, row.view.service);
                let proxy = row.proxy;
                if key.code == KeyCode::Char('a') {
                    self.mode = Mode::Confirm(Pending::Approve {
                        request,
                        what,
                        proxy,
                    });
                } else {
                    self.mode = Mode::Note(NoteInput {
                        pending: Pending::Deny {
                            request,
                            what,
                            proxy,
                            reason: String::new(),
                        },
                        text: String::new(),
                    });
                }
            }
            (Tab::Requests, KeyCode::Char('c')) => {
                // Rows: the requests waiting for you, then your own pending ones.
                let mine = self.mine_pending();
                let Some(row) = selection
                    .checked_sub(self.to_decide().len())
                    .and_then(|i| mine.get(i))
                else {
                    self.say("select one of your own pending requests to withdraw it");
                    return Vec::new();
                };
                self.mode = Mode::Confirm(Pending::Cancel {
                    request: row.view.id.clone(),
                    what: row.view.service.to_string(),
                    proxy: row.proxy,
                });
            }
            (Tab::Grants, KeyCode::Char('x')) => {
                let now = self.now_ms / 1000;
                let grants = self.grants();
                let Some(row) = grants.get(selection) else {
                    self.say("no grant to act on yet");
                    return Vec::new();
                };
                if !self.grant_live(row.view, now) {
                    let text = format!("{} is already {}", row.view.id, shown_state(row.view, now));
                    self.say(text);
                    return Vec::new();
                }
                let pending = Pending::Revoke {
                    grant: row.view.id.clone(),
                    what: format!("{} on {}", row.view.responder, row.view.service),
                    proxy: row.proxy,
                    reason: String::new(),
                };
                self.mode = Mode::Note(NoteInput {
                    pending,
                    text: String::new(),
                });
            }
            (Tab::Grants, KeyCode::Char(c @ ('o' | 's'))) => {
                let now = self.now_ms / 1000;
                let grants = self.grants();
                let Some(row) = grants.get(selection) else {
                    self.say("no grant to act on yet");
                    return Vec::new();
                };
                let service = row.view.service.clone();
                let mine = row.view.responder == self.me && self.grant_live(row.view, now);
                let kind = self.kind_of(&service);
                if !mine {
                    self.say(format!("{} is not a live grant of yours", row.view.id));
                    return Vec::new();
                }
                return match (c, kind.as_deref()) {
                    ('o', Some("http")) => vec![Command::Open(service)],
                    ('s', Some("ssh")) => vec![Command::Ssh(service)],
                    ('o', _) => {
                        self.say(format!(
                            "{service} is not an HTTP tool: `o` opens HTTP tools"
                        ));
                        Vec::new()
                    }
                    _ => {
                        self.say(format!(
                            "{service} is not an SSH host: `s` is for SSH tools"
                        ));
                        Vec::new()
                    }
                };
            }
            (Tab::Drill, KeyCode::Enter) => {
                if self.drill().is_some() {
                    return vec![Command::Join];
                }
                self.say("no live drill runs");
            }
            _ => {}
        }
        Vec::new()
    }

    fn kind_of(&self, service: &ServiceName) -> Option<String> {
        self.source()?
            .services
            .iter()
            .find(|s| &s.name == service)
            .map(|s| s.kind.name().to_owned())
    }

    fn form_key(&mut self, mut form: AccessForm, key: KeyEvent) -> Vec<Command> {
        match key.code {
            KeyCode::Esc => {
                self.say("cancelled");
                return Vec::new();
            }
            KeyCode::Tab | KeyCode::Down => form.field = (form.field + 1) % 4,
            KeyCode::BackTab | KeyCode::Up => form.field = (form.field + 3) % 4,
            KeyCode::Char(' ') if form.field == 3 => form.emergency = !form.emergency,
            KeyCode::Enter => {
                if form.field < 3 && !(form.field == 2 || all_filled(&form)) {
                    form.field += 1;
                } else {
                    return self.submit(form);
                }
            }
            KeyCode::Backspace => {
                if let Some(text) = form_text(&mut form) {
                    text.pop();
                }
            }
            KeyCode::Char(c) if !c.is_control() => {
                if let Some(text) = form_text(&mut form) {
                    text.push(c);
                }
            }
            _ => {}
        }
        self.mode = Mode::Form(form);
        Vec::new()
    }

    fn submit(&mut self, form: AccessForm) -> Vec<Command> {
        let problem = if form.reason.trim().is_empty() {
            Some("a reason is needed")
        } else if form.incident.trim().is_empty() {
            Some("an incident is needed")
        } else if !form.ttl.trim().is_empty()
            && form
                .ttl
                .trim()
                .parse::<bglass_core::duration::HumanDuration>()
                .is_err()
        {
            Some("the TTL is a duration such as 30m or 1h")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.say(problem);
            self.mode = Mode::Form(form);
            return Vec::new();
        }
        if form.emergency {
            self.mode = Mode::Confirm(Pending::Access(form));
            return Vec::new();
        }
        self.access(form)
    }

    fn access(&mut self, form: AccessForm) -> Vec<Command> {
        let Ok(service) = form.service.parse::<ServiceName>() else {
            self.say(format!("{} is not a service name", form.service));
            return Vec::new();
        };
        self.waiting.retain(|w| w.service != service);
        self.waiting.push(Waiting {
            service: service.clone(),
            request: None,
            approved: 0,
            needed: 0,
            started_ms: self.now_ms,
        });
        self.say(format!("asking for {service}…"));
        let ttl = Some(form.ttl.trim().to_owned()).filter(|t| !t.is_empty());
        vec![Command::Access {
            service,
            reason: form.reason.trim().to_owned(),
            incident: form.incident.trim().to_owned(),
            ttl,
            emergency: form.emergency,
        }]
    }

    fn note_key(&mut self, mut note: NoteInput, key: KeyEvent) -> Vec<Command> {
        match key.code {
            KeyCode::Esc => {
                self.say("cancelled");
                return Vec::new();
            }
            KeyCode::Enter => {
                let text = note.text.trim().to_owned();
                if text.is_empty() {
                    self.say("a reason is needed");
                    self.mode = Mode::Note(note);
                    return Vec::new();
                }
                let pending = match note.pending {
                    Pending::Deny {
                        request,
                        what,
                        proxy,
                        ..
                    } => Pending::Deny {
                        request,
                        what,
                        proxy,
                        reason: text,
                    },
                    Pending::Revoke {
                        grant, what, proxy, ..
                    } => Pending::Revoke {
                        grant,
                        what,
                        proxy,
                        reason: text,
                    },
                    other => other,
                };
                self.mode = Mode::Confirm(pending);
                return Vec::new();
            }
            KeyCode::Backspace => {
                note.text.pop();
            }
            KeyCode::Char(c) if !c.is_control() => note.text.push(c),
            _ => {}
        }
        self.mode = Mode::Note(note);
        Vec::new()
    }

    fn confirmed(&mut self, pending: Pending) -> Vec<Command> {
        match pending {
            Pending::Approve { request, proxy, .. } => {
                self.say(format!("approving {request}…"));
                vec![Command::Approve { request, proxy }]
            }
            Pending::Deny {
                request,
                proxy,
                reason,
                ..
            } => {
                self.say(format!("denying {request}…"));
                vec![Command::Deny {
                    request,
                    reason,
                    proxy,
                }]
            }
            Pending::Revoke {
                grant,
                proxy,
                reason,
                ..
            } => {
                self.say(format!("revoking {grant}…"));
                vec![Command::Revoke {
                    grant,
                    reason,
                    proxy,
                }]
            }
            Pending::Cancel { request, proxy, .. } => {
                self.say(format!("withdrawing {request}…"));
                vec![Command::Cancel { request, proxy }]
            }
            Pending::Access(form) => self.access(form),
        }
    }
}

fn all_filled(form: &AccessForm) -> bool {
    !form.reason.trim().is_empty() && !form.incident.trim().is_empty()
}

fn form_text(form: &mut AccessForm) -> Option<&mut String> {
    match form.field {
        0 => Some(&mut form.reason),
        1 => Some(&mut form.incident),
        2 => Some(&mut form.ttl),
        _ => None,
    }
}
