//! Drawing the console's model with ratatui: a header (who you are, which proxy serves,
//! how old the data is when no proxy answers), the tabs, the current view, a footer with the
//! last message and the keys, and the overlays (help, the access form, notes, questions).
//! Drawing reads the model only, so a `TestBackend` shows exactly what a terminal would.

use bglass_core::duration::elapsed_text;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Tabs, Wrap,
};

use super::model::{Mode, Model, Tab, age, clock_left, shown_state};

/// Styles, with colour or (under `NO_COLOR`) with modifiers only.
struct Palette {
    color: bool,
}

impl Palette {
    fn bad(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }
    fn good(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Green)
        } else {
            Style::new()
        }
    }
    fn warn(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }
    fn dim(&self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }
    fn head(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }
    fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
}

/// Draws the whole console.
pub fn draw(frame: &mut Frame<'_>, model: &Model) {
    let p = Palette { color: model.color };
    let [header, tabs, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_header(frame, header, model, &p);
    let titles: Vec<Line<'_>> = Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut title = format!("{} {}", i + 1, t.title());
            if *t == Tab::Requests {
                let n = model.to_decide().len();
                if n > 0 {
                    title.push_str(&format!(" ({n})"));
                }
            }
            Line::from(title)
        })
        .collect();
    let selected = Tab::ALL.iter().position(|t| *t == model.tab).unwrap_or(0);
    frame.render_widget(
        Tabs::new(titles)
            .select(selected)
            .highlight_style(p.selected())
            .divider("|"),
        tabs,
    );
    match model.tab {
        Tab::Proxies => draw_proxies(frame, body, model, &p),
        Tab::Services => draw_services(frame, body, model, &p),
        Tab::Requests => draw_requests(frame, body, model, &p),
        Tab::Grants => draw_grants(frame, body, model, &p),
        Tab::Drill => draw_drill(frame, body, model, &p),
    }
    draw_footer(frame, footer, model, &p);
    draw_overlay(frame, model, &p);
}

fn draw_header(frame: &mut Frame<'_>, area: Rect, model: &Model, p: &Palette) {
    let roles = model.roles();
    let mut spans = vec![
        Span::styled("bglass", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!(" {}", model.me)),
    ];
    if !roles.is_empty() {
        spans.push(Span::raw(format!(" [{}]", roles.join(","))));
    }
    spans.push(Span::raw(" | "));
    match model.serving() {
        Some(i) => {
            let p_state = &model.proxies[i];
            let id = p_state.data.as_ref().map_or("?", |d| d.id.as_str());
            spans.push(Span::styled(format!("serving: {id}"), p.good()));
            let down = model.proxies.iter().filter(|x| x.polled && !x.up()).count();
            if down > 0 {
                spans.push(Span::styled(format!(" ({down} not answering)"), p.warn()));
            }
        }
        None => match model.stale_for_ms() {
            Some(ms) => spans.push(Span::styled(
                format!("NO PROXY ANSWERS: showing data from {} ago", age(ms)),
                p.bad(),
            )),
            None if model.proxies.iter().any(|x| x.polled) => {
                spans.push(Span::styled("NO PROXY ANSWERS: nothing known yet", p.bad()));
            }
            None => spans.push(Span::styled("contacting the proxies…", p.dim())),
        },
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_footer(frame: &mut Frame<'_>, area: Rect, model: &Model, p: &Palette) {
    let keys = match (&model.mode, model.tab) {
        (Mode::Filter, _) => "type to filter  Enter keep  Esc clear",
        (Mode::Form(_), _) => "Tab next field  Space toggles emergency  Enter ask  Esc cancel",
        (Mode::Note(_), _) => "type the reason  Enter next  Esc cancel",
        (Mode::Confirm(_), _) => "y yes  any other key: no",
        (Mode::Help, _) => "any key closes the help",
        (_, Tab::Services) => "Enter ask  / filter  ? keys  q quit",
        (_, Tab::Requests) => "a approve  d deny  c withdraw yours  ? keys  q quit",
        (_, Tab::Grants) => "x revoke  o open  s ssh  ? keys  q quit",
        (_, Tab::Drill) => "Enter join the live drill  ? keys  q quit",
        _ => "Tab/1-5 views  r refresh  ? keys  q quit",
    };
    let line = match &model.message {
        Some((text, _)) => Line::from(vec![
            Span::styled(text.clone(), p.warn()),
            Span::raw("  "),
            Span::styled(keys, p.dim()),
        ]),
        None => Line::from(Span::styled(keys, p.dim())),
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn table_state(selected: usize, rows: usize) -> TableState {
    let mut state = TableState::default();
    if rows > 0 {
        state.select(Some(selected));
    }
    state
}

fn draw_proxies(frame: &mut Frame<'_>, area: Rect, model: &Model, p: &Palette) {
    let [table_area, detail] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(4)]).areas(area);
    let serving = model.serving();
    let rows: Vec<Row<'_>> = model
        .proxies
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let id = x.data.as_ref().map_or("?".to_owned(), |d| d.id.clone());
            let (state, style) = if !x.polled {
                ("…".to_owned(), p.dim())
            } else if x.split_view {
                ("SPLIT VIEW".to_owned(), p.bad())
            } else if x.up() && serving == Some(i) {
                ("serving".to_owned(), p.good())
            } else if x.up() {
                ("up".to_owned(), p.good())
            } else {
                ("DOWN".to_owned(), p.bad())
            };
            let latency = x
                .latency_ms
                .filter(|_| x.up())
                .map_or("-".to_owned(), |l| format!("{l} ms"));
            let log = x
                .data
                .as_ref()
                .map_or("-".to_owned(), |d| d.log_size.to_string());
            let checkpoint = match (x.checkpoint_size, x.checkpoint_ms) {
                (Some(size), Some(at)) => {
                    format!("{size} ok {} ago", age(model.now_ms.saturating_sub(at)))
                }
                (Some(size), None) => format!("{size}"),
                _ => "-".to_owned(),
            };
            let data = match x.last_ok_ms {
                Some(_) if x.up() => "fresh".to_owned(),
                Some(at) => format!("STALE {}", age(model.now_ms.saturating_sub(at))),
                None => "none".to_owned(),
            };
            Row::new(vec![
                Cell::from(id),
                Cell::from(state).style(style),
                Cell::from(latency),
                Cell::from(log),
                Cell::from(checkpoint),
                Cell::from(data),
            ])
        })
        .collect();
    let n = rows.len();
    let table = list_table(
        rows,
        &[
            ("proxy", Constraint::Length(14)),
            ("state", Constraint::Length(10)),
            ("latency", Constraint::Length(8)),
            ("log", Constraint::Length(8)),
            ("checkpoint", Constraint::Min(14)),
            ("data", Constraint::Length(11)),
        ],
        " Proxies ",
        p,
    );
    frame.render_stateful_widget(table, table_area, &mut table_state(model.selection(), n));
    if let Some(x) = model.proxies.get(model.selection()) {
        let mut lines = vec![Line::from(format!("url: {}", x.url))];
        if let Some(e) = &x.error {
            lines.push(Line::from(Span::styled(
                format!("last error: {e}"),
                p.bad(),
            )));
        }
        if let Some(f) = x.data.as_ref().and_then(|d| d.audit_failure.as_ref()) {
            lines.push(Line::from(Span::styled(
                format!("AUDIT LOG FAILED: {f} (this proxy refuses access)"),
                p.bad(),
            )));
        }
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: true })
                .block(Block::new().borders(Borders::TOP)),
            detail,
        );
    }
}

fn stale_note(model: &Model, p: &Palette) -> Option<Line<'static>> {
    model.stale_for_ms().map(|ms| {
        Line::from(Span::styled(
            format!(
                "STALE: no proxy answers; this is what they said {} ago",
                age(ms)
            ),
            p.bad(),
        ))
    })
}

fn draw_services(frame: &mut Frame<'_>, area: Rect, model: &Model, p: &Palette) {
    let waiting_lines: Vec<Line<'_>> = model
        .waiting
        .iter()
        .map(|w| {
            let elapsed = model.now_ms.saturating_sub(w.started_ms) / 1000;
            let clock = format!("[{:02}:{:02}]", elapsed / 60, elapsed % 60);
            let text = match &w.request {
                Some(id) => format!(
                    "waiting for approval of {} ({id}): {} of {} {clock}",
                    w.service, w.approved, w.needed
                ),
                None => format!("asking for {}… {clock}", w.service),
            };
            Line::from(Span::styled(text, p.warn()))
        })
        .collect();
    let mut top: Vec<Line<'_>> = Vec::new();
    if let Some(line) = stale_note(model, p) {
        top.push(line);
    }
    if !model.filter.is_empty() || model.mode == Mode::Filter {
        top.push(Line::from(format!("filter: /{}", model.filter)));
    }
    top.extend(waiting_lines);
    let top_len = u16::try_from(top.len()).unwrap_or(u16::MAX);
    let [top_area, table_area] =
        Layout::vertical([Constraint::Length(top_len), Constraint::Min(2)]).areas(area);
    frame.render_widget(Paragraph::new(top), top_area);
    let now = model.now_ms / 1000;
    let services = model.services();
    let rows: Vec<Row<'_>> = services
        .iter()
        .map(|s| {
            let health_style = match s.health.as_str() {
                "up" => p.good(),
                "down" => p.bad(),
                _ => p.dim(),
            };
            let approvals = if s.emergency_bypass {
                format!("{} +em", s.approvals)
            } else {
                s.approvals.to_string()
            };
            let grant = match model.held(&s.name) {
                Some(g) => Span::styled(
                    format!("held {}", clock_left(g.exp.saturating_sub(now))),
                    p.good(),
                ),
                None if model.waiting.iter().any(|w| w.service == s.name) => {
                    Span::styled("waiting", p.warn())
                }
                None => Span::raw(""),
            };
            Row::new(vec![
                Cell::from(s.name.to_string()),
                Cell::from(s.kind.name()),
                Cell::from(s.health.clone()).style(health_style),
                Cell::from(approvals),
                Cell::from(grant),
                Cell::from(s.detail.clone().unwrap_or_default()),
            ])
        })
        .collect();
    let n = rows.len();
    let table = list_table(
        rows,
        &[
            ("service", Constraint::Length(18)),
            ("kind", Constraint::Length(4)),
            ("health", Constraint::Length(7)),
            ("approvals", Constraint::Length(9)),
            ("your grant", Constraint::Length(11)),
            ("detail", Constraint::Min(10)),
        ],
        format!(" Services ({n}) "),
        p,
    );
    frame.render_stateful_widget(table, table_area, &mut table_state(model.selection(), n));
}

fn draw_requests(frame: &mut Frame<'_>, area: Rect, model: &Model, p: &Palette) {
    let decide = model.to_decide();
    let mine = model.mine_pending();
    let mut top: Vec<Line<'_>> = Vec::new();
    if let Some(line) = stale_note(model, p) {
        top.push(line);
    }
    let top_len = u16::try_from(top.len()).unwrap_or(u16::MAX);
    let mine_len = u16::try_from(mine.len() + 2).unwrap_or(u16::MAX).min(8);
    let [top_area, decide_area, mine_area] = Layout::vertical([
        Constraint::Length(top_len),
        Constraint::Min(3),
        Constraint::Length(mine_len),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(top), top_area);
    let selection = model.selection();
    let row = |r: &super::model::RequestRow<'_>, who: bool| {
        let mut cells = Vec::new();
        cells.push(Cell::from(r.view.id.to_string()));
        if who {
            cells.push(Cell::from(r.view.responder.to_string()));
        }
        cells.push(Cell::from(r.view.service.to_string()));
        cells.push(Cell::from(format!(
            "{}/{}{}",
            r.view.approved_by.len(),
            r.view.approvals_needed,
            if r.view.emergency { " EM" } else { "" }
        )));
        cells.push(Cell::from(format!(
            "{}{}",
            age(model.now_ms.saturating_sub(r.view.created_ms)),
            if r.stale { " stale" } else { "" }
        )));
        cells.push(Cell::from(r.view.incident.clone()));
        cells.push(Cell::from(r.view.reason.clone()));
        Row::new(cells)
    };
    let rows: Vec<Row<'_>> = decide.iter().map(|r| row(r, true)).collect();
    let title = if model.is_approver() {
        format!(" Waiting for you ({}) ", decide.len())
    } else {
        " Waiting for you (you are not an approver) ".to_owned()
    };
    let table = list_table(
        rows,
        &[
            ("request", Constraint::Length(18)),
            ("requester", Constraint::Length(10)),
            ("service", Constraint::Length(14)),
            ("appr", Constraint::Length(5)),
            ("age", Constraint::Length(9)),
            ("incident", Constraint::Length(10)),
            ("reason", Constraint::Min(8)),
        ],
        title,
        p,
    );
    let n = decide.len();
    let mut state = table_state(selection, n);
    if selection >= n {
        state.select(None);
    }
    frame.render_stateful_widget(table, decide_area, &mut state);
    let rows: Vec<Row<'_>> = mine.iter().map(|r| row(r, false)).collect();
    let table = list_table(
        rows,
        &[
            ("request", Constraint::Length(18)),
            ("service", Constraint::Length(14)),
            ("appr", Constraint::Length(5)),
            ("age", Constraint::Length(9)),
            ("incident", Constraint::Length(10)),
            ("reason", Constraint::Min(8)),
        ],
        format!(" Your pending requests ({}) ", mine.len()),
        p,
    );
    let mut state = TableState::default();
    if selection >= n && !mine.is_empty() {
        state.select(Some(selection - n));
    }
    frame.render_stateful_widget(table, mine_area, &mut state);
}

/// A bar of `width` cells for `left` of `total` seconds.
fn bar(left: u64, total: u64, width: usize) -> String {
    let cells = u64::try_from(width).unwrap_or(u64::MAX);
    let filled = (left.min(total).saturating_mul(cells))
        .checked_div(total)
        .map_or(0, |f| usize::try_from(f).unwrap_or(width))
        .min(width);
    format!("{}{}", "#".repeat(filled), "-".repeat(width - filled))
}

fn draw_grants(frame: &mut Frame<'_>, area: Rect, model: &Model, p: &Palette) {
    let mut top: Vec<Line<'_>> = Vec::new();
    if let Some(line) = stale_note(model, p) {
        top.push(line);
    }
    let top_len = u16::try_from(top.len()).unwrap_or(u16::MAX);
    let [top_area, table_area] =
        Layout::vertical([Constraint::Length(top_len), Constraint::Min(2)]).areas(area);
    frame.render_widget(Paragraph::new(top), top_area);
    let now = model.now_ms / 1000;
    let grants = model.grants();
    let wide = area.width >= 120;
    let rows: Vec<Row<'_>> = grants
        .iter()
        .map(|g| {
            let state = shown_state(g.view, now);
            let live = model.grant_live(g.view, now);
            let left = g.view.exp.saturating_sub(now);
            let total = g.view.exp.saturating_sub(g.view.nbf);
            let time = if live {
                Span::styled(
                    format!(
                        "{} {}",
                        bar(left, total, if wide { 20 } else { 8 }),
                        clock_left(left)
                    ),
                    if left < 120 { p.warn() } else { p.good() },
                )
            } else {
                Span::styled(state.to_uppercase(), p.bad())
            };
            let mut flags = String::new();
            if g.view.emergency {
                flags.push_str("EMERGENCY");
                if g.view.review_open == Some(true) {
                    flags.push_str(", review open");
                }
            }
            if g.stale {
                flags.push_str(" stale");
            }
            Row::new(vec![
                Cell::from(g.view.id.to_string()),
                Cell::from(g.view.responder.to_string()),
                Cell::from(g.view.service.to_string()),
                Cell::from(time),
                Cell::from(flags),
            ])
        })
        .collect();
    let n = rows.len();
    let table = list_table(
        rows,
        &[
            ("grant", Constraint::Length(18)),
            ("holder", Constraint::Length(10)),
            ("service", Constraint::Length(14)),
            ("time left", Constraint::Length(if wide { 27 } else { 15 })),
            ("", Constraint::Min(6)),
        ],
        format!(" Grants ({n}) "),
        p,
    );
    frame.render_stateful_widget(table, table_area, &mut table_state(model.selection(), n));
}

/// A list with a header row, the selected row highlighted, under a titled rule; `columns`
/// are each column's heading and width.
fn list_table<'a>(
    rows: Vec<Row<'a>>,
    columns: &[(&'a str, Constraint)],
    title: impl Into<Line<'a>>,
    p: &Palette,
) -> Table<'a> {
    Table::new(rows, columns.iter().map(|(_, width)| *width))
        .header(Row::new(columns.iter().map(|(heading, _)| *heading)).style(p.head()))
        .row_highlight_style(p.selected())
        .block(Block::new().borders(Borders::TOP).title(title))
}

fn draw_drill(frame: &mut Frame<'_>, area: Rect, model: &Model, p: &Palette) {
    let mut lines: Vec<Line<'_>> = Vec::new();
    if let Some(line) = stale_note(model, p) {
        lines.push(line);
    }
    match model.drill() {
        None => {
            lines.push(Line::from("No live drill runs."));
            lines.push(Line::from(Span::styled(
                "A drill lead starts one with `bglass drill start`; join it with `bglass drill join`.",
                p.dim(),
            )));
        }
        Some((plan, started_ms)) => {
            let ran = model.now_ms.saturating_sub(*started_ms);
            lines.push(Line::from(Span::styled(
                format!("LIVE DRILL {} ({})", plan.drill, plan.scenario),
                p.warn(),
            )));
            lines.push(Line::from(format!(
                "running for {} of {}",
                elapsed_text(ran),
                elapsed_text(plan.duration_ms)
            )));
            lines.push(Line::from(format!(
                "tools to probe: {}",
                plan.services
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
            for skip in &plan.skip {
                let state = if ran >= skip.start_ms && ran < skip.end_ms {
                    "NOW: do not use it"
                } else if ran < skip.start_ms {
                    "later"
                } else {
                    "over"
                };
                lines.push(Line::from(format!(
                    "fault: {} unreachable from {} to {} ({state})",
                    skip.proxy,
                    elapsed_text(skip.start_ms),
                    elapsed_text(skip.end_ms)
                )));
            }
            let now = model.now_ms / 1000;
            // Each of the drill's tools you were granted since it started (grant times are
            // whole seconds: a grant in the drill's first second counts), once.
            let mut mine: Vec<String> = Vec::new();
            for service in &plan.services {
                let granted = model.grants().into_iter().find(|g| {
                    g.view.responder == model.me
                        && &g.view.service == service
                        && g.view.nbf >= started_ms / 1000
                });
                if let Some(g) = granted {
                    mine.push(format!("{service} {}", shown_state(g.view, now)));
                }
            }
            lines.push(Line::from(format!(
                "your progress: {} of {} tools granted since the start{}",
                mine.len(),
                plan.services.len(),
                if mine.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", mine.join(", "))
                }
            )));
            lines.push(Line::from(Span::styled(
                "Enter joins it (bglass drill join: each tool probed in turn); the lead scores it with `bglass drill report`.",
                p.dim(),
            )));
        }
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(Block::new().borders(Borders::TOP).title(" Drill ")),
        area,
    );
}

/// A rectangle of `width` x `height` centred in `area` (clipped to it).
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

const HELP: &[(&str, &str)] = &[
    (
        "Tab 1-5",
        "switch view (Proxies Services Requests Grants Drill)",
    ),
    ("Up Down j k", "select a row"),
    ("Enter", "Services: ask for access to the selected tool"),
    ("/", "Services: filter (fuzzy); Esc clears"),
    (
        "a / d",
        "Requests: approve / deny (a reason) the selected request",
    ),
    ("c", "Requests: withdraw your own selected pending request"),
    ("x", "Grants: revoke the selected grant (a reason)"),
    ("o", "Grants: open an HTTP tool (hands over the terminal)"),
    ("s", "Grants: ssh to an SSH tool (hands over the terminal)"),
    (
        "Enter",
        "Drill: join the live drill (hands over the terminal)",
    ),
    ("r", "poll the proxies now"),
    ("q Ctrl-C", "quit (the key is wiped from memory)"),
];

fn draw_overlay(frame: &mut Frame<'_>, model: &Model, p: &Palette) {
    let area = frame.area();
    let (title, lines): (&str, Vec<Line<'_>>) = match &model.mode {
        Mode::Normal | Mode::Filter => return,
        Mode::Help => (
            " Keys ",
            HELP.iter()
                .map(|(k, what)| {
                    Line::from(vec![
                        Span::styled(
                            format!("{k:<12}"),
                            Style::new().add_modifier(Modifier::BOLD),
                        ),
                        Span::raw(*what),
                    ])
                })
                .collect(),
        ),
        Mode::Form(form) => {
            let field = |i: usize, label: &str, value: String| {
                let text = format!(
                    "{label:<10}{value}{}",
                    if form.field == i { "_" } else { "" }
                );
                if form.field == i {
                    Line::from(Span::styled(text, p.selected()))
                } else {
                    Line::from(text)
                }
            };
            (
                " Ask for access ",
                vec![
                    Line::from(format!("tool:     {}", form.service)),
                    field(0, "reason:", form.reason.clone()),
                    field(1, "incident:", form.incident.clone()),
                    field(
                        2,
                        "TTL:",
                        if form.ttl.is_empty() && form.field != 2 {
                            "(the catalog's default)".to_owned()
                        } else {
                            form.ttl.clone()
                        },
                    ),
                    field(
                        3,
                        "emergency",
                        if form.emergency {
                            "[x] bypass approvals (confirmed next)".to_owned()
                        } else {
                            "[ ] (Space toggles)".to_owned()
                        },
                    ),
                ],
            )
        }
        Mode::Note(note) => (
            " Reason ",
            vec![
                Line::from(note.pending.question().replace(" with reason \"\"", "")),
                Line::from(Span::styled(
                    format!("reason: {}_", note.text),
                    p.selected(),
                )),
            ],
        ),
        Mode::Confirm(pending) => (
            " Confirm ",
            vec![
                Line::from(Span::styled(pending.question(), p.warn())),
                Line::from("y: yes   any other key: no"),
            ],
        ),
    };
    let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    let width = area.width.saturating_sub(4).min(76);
    let rect = centered(area, width, height + 1);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(title)),
        rect,
    );
}

#[cfg(test)]
mod tests;
