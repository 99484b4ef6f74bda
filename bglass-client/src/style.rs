//! Colour and aligned columns for the CLI's text output: `--color auto|always|never` and
//! `NO_COLOR` (auto colours only a terminal that is not `TERM=dumb`, and only without a
//! non-empty `NO_COLOR`), and tables whose columns line up whatever the colours.

use std::io::IsTerminal;
use std::sync::OnceLock;

/// When to colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set or TERM is dumb.
    #[default]
    Auto,
    /// Always (even into a pipe, and despite NO_COLOR).
    Always,
    /// Never.
    Never,
}

static ENABLED: OnceLock<bool> = OnceLock::new();

/// Whether to colour standard output, given the choice, the environment and whether
/// standard output is a terminal.
pub fn decide(choice: ColorChoice, no_color: Option<&str>, term: Option<&str>, tty: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            tty && no_color.is_none_or(str::is_empty) && term.is_none_or(|t| t != "dumb")
        }
    }
}

/// Sets colour for this process from `--color` and the environment (once, in `main`).
pub fn init(choice: ColorChoice) {
    let no_color = std::env::var("NO_COLOR").ok();
    let term = std::env::var("TERM").ok();
    let on = decide(
        choice,
        no_color.as_deref(),
        term.as_deref(),
        std::io::stdout().is_terminal(),
    );
    let _ = ENABLED.set(on);
}

/// Whether output is coloured.
pub fn enabled() -> bool {
    ENABLED.get().copied().unwrap_or(false)
}

/// A text style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// No style.
    Plain,
    /// Good news (granted, up, active).
    Good,
    /// Needs attention (pending, unknown).
    Warn,
    /// Bad news (down, denied, emergency, unavailable).
    Bad,
    /// Less important (ids, proxies, expired).
    Dim,
    /// Headings.
    Bold,
}

impl Style {
    fn code(self) -> Option<&'static str> {
        match self {
            Self::Plain => None,
            Self::Good => Some("32"),
            Self::Warn => Some("33"),
            Self::Bad => Some("1;31"),
            Self::Dim => Some("2"),
            Self::Bold => Some("1"),
        }
    }
}

/// `text` in `style` when colour is on.
pub fn paint(text: &str, style: Style) -> String {
    paint_if(enabled(), text, style)
}

fn paint_if(on: bool, text: &str, style: Style) -> String {
    match style.code() {
        Some(code) if on && !text.is_empty() => format!("\x1b[{code}m{text}\x1b[0m"),
        _ => text.to_owned(),
    }
}

/// The style of a health, grant or request state word.
pub fn state_style(state: &str) -> Style {
    match state {
        "up" | "active" | "granted" | "approved" | "reviewed" => Style::Good,
        "pending" | "unknown" | "degraded" => Style::Warn,
        "down" | "denied" | "revoked" | "failed" => Style::Bad,
        "expired" | "cancelled" => Style::Dim,
        _ => Style::Plain,
    }
}

/// A table cell: its text and style.
#[derive(Debug, Clone)]
pub struct Cell {
    text: String,
    style: Style,
}

impl Cell {
    /// A plain cell.
    pub fn plain(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            style: Style::Plain,
        }
    }

    /// A styled cell.
    pub fn styled(text: impl Into<String>, style: Style) -> Self {
        Self {
            text: text.into(),
            style,
        }
    }
}

/// Rows rendered with their columns aligned (two spaces apart, the last column not
/// padded), the header in bold; colour never shifts a column.
pub fn table(header: &[&str], rows: &[Vec<Cell>], indent: &str) -> Vec<String> {
    table_with(enabled(), header, rows, indent)
}

fn table_with(on: bool, header: &[&str], rows: &[Vec<Cell>], indent: &str) -> Vec<String> {
    let columns = rows
        .iter()
        .map(Vec::len)
        .chain(std::iter::once(header.len()))
        .max()
        .unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for (i, h) in header.iter().enumerate() {
        widths[i] = widths[i].max(h.chars().count());
    }
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.text.chars().count());
        }
    }
    let render = |cells: Vec<(String, Style)>| {
        let last = cells.len().saturating_sub(1);
        let mut line = indent.to_owned();
        for (i, (text, style)) in cells.into_iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(&paint_if(on, &text, style));
            if i < last {
                let pad = widths[i].saturating_sub(text.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        line.trim_end().to_owned()
    };
    let mut out = Vec::with_capacity(rows.len() + 1);
    if !header.is_empty() {
        out.push(render(
            header
                .iter()
                .map(|h| ((*h).to_owned(), Style::Bold))
                .collect(),
        ));
    }
    for row in rows {
        out.push(render(
            row.iter().map(|c| (c.text.clone(), c.style)).collect(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_colours_only_a_terminal_without_no_color() {
        assert!(decide(ColorChoice::Auto, None, Some("xterm"), true));
        assert!(!decide(ColorChoice::Auto, None, Some("xterm"), false));
        assert!(!decide(ColorChoice::Auto, Some("1"), Some("xterm"), true));
        assert!(decide(ColorChoice::Auto, Some(""), Some("xterm"), true));
        assert!(!decide(ColorChoice::Auto, None, Some("dumb"), true));
        assert!(decide(ColorChoice::Always, Some("1"), None, false));
        assert!(!decide(ColorChoice::Never, None, None, true));
    }

    #[test]
    fn columns_line_up_with_and_without_colour() {
        let rows = vec![
            vec![
                Cell::plain("grafana"),
                Cell::styled("up", Style::Good),
                Cell::plain("0"),
            ],
            vec![
                Cell::plain("kubernetes-api"),
                Cell::styled("down", Style::Bad),
                Cell::plain("1"),
            ],
        ];
        let plain = table_with(false, &["SERVICE", "HEALTH", "APPROVALS"], &rows, "  ");
        assert_eq!(
            plain,
            [
                "  SERVICE         HEALTH  APPROVALS",
                "  grafana         up      0",
                "  kubernetes-api  down    1",
            ]
        );
        let coloured = table_with(true, &["SERVICE", "HEALTH", "APPROVALS"], &rows, "  ");
        let strip = |s: &str| {
            let mut out = String::new();
            let mut in_escape = false;
            for c in s.chars() {
                match (in_escape, c) {
                    (false, '\x1b') => in_escape = true,
                    (true, 'm') => in_escape = false,
                    (true, _) => {}
                    (false, c) => out.push(c),
                }
            }
            out
        };
        let stripped: Vec<String> = coloured.iter().map(|l| strip(l)).collect();
        assert_eq!(stripped, plain);
        assert!(coloured[1].contains("\x1b[32mup\x1b[0m"), "{coloured:?}");
    }
}
