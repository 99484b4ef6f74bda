//! A drill's reports: the scorecard as text for the terminal ([`text`]), as
//! `report.html` ([`html`], with its charts' arithmetic in `charts`), and as `report.json`
//! for scripts, written together by [`write_reports`]. The scorecard itself is computed in
//! `bglass_core::drill`; presentation lives here.

mod charts;
pub mod html;
#[cfg(test)]
mod tests;
pub mod text;

use std::path::{Path, PathBuf};

use bglass_client::error::{CliError, CliResult, ErrorKind};
use bglass_core::drill::Scorecard;

pub use html::to_html;
pub use text::to_text;

/// Writes `report.json` and `report.html` to `out`; returns their paths.
pub fn write_reports(out: &Path, card: &Scorecard) -> CliResult<(PathBuf, PathBuf)> {
    let write = |name: &str, bytes: Vec<u8>| {
        let path = out.join(name);
        std::fs::write(&path, bytes)
            .map_err(|e| CliError::user(format!("{}: {e}", path.display())))
            .map(|()| path)
    };
    std::fs::create_dir_all(out).map_err(|e| CliError::user(format!("{}: {e}", out.display())))?;
    let json = write(
        "report.json",
        serde_json::to_vec_pretty(card).map_err(CliError::internal)?,
    )?;
    let html = write("report.html", to_html(card).into_bytes())?;
    Ok((json, html))
}

/// The exit status of a drill whose expectations were not met.
pub fn not_met() -> CliError {
    CliError::new(
        ErrorKind::DrillFailed,
        "the drill did not meet its expectations (see above)",
    )
}
