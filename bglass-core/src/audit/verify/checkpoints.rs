//! The stored checkpoints as verification reads them: the history, then the `checkpoint`
//! file when it is not the history's last note, each named by its position; read once to
//! learn their sizes and once more, exactly as first seen, to check them.

use std::path::Path;

use super::{Defect, DefectKind, defect};
use crate::audit::checkpoint;
use crate::audit::storage::{self, HISTORY_FILE};

/// The stored checkpoints: how many, and how to name one by its position.
pub(super) struct Checkpoints {
    /// Notes in the history.
    pub(super) history: u64,
    /// All of them: the history, and the `checkpoint` file when it is not the history's
    /// last note (position `history`).
    pub(super) count: u64,
    /// The `checkpoint` file's note, when it is not the history's last note.
    file: Option<Vec<u8>>,
}

impl Checkpoints {
    /// Whether a note that does not verify may be a crash artefact: the history's last
    /// note (when nothing follows it in the history), or the `checkpoint` file.
    pub(super) fn torn_candidate(&self, position: u64) -> bool {
        position + 1 == self.history || position == self.history
    }

    pub(super) fn label(&self, position: u64) -> String {
        if position < self.history {
            format!("checkpoint #{} in {HISTORY_FILE}", position + 1)
        } else {
            format!("the checkpoint in {}", storage::CHECKPOINT_FILE)
        }
    }
}

/// Streams every stored checkpoint through `f` (position, note): the history in order,
/// then the `checkpoint` file when it differs from the history's last note.
pub(super) fn scan_checkpoints(
    dir: &Path,
    warnings: &mut Vec<String>,
    mut f: impl FnMut(u64, &[u8]),
) -> Result<Checkpoints, Defect> {
    let mut last: Vec<u8> = Vec::new();
    let mut history = 0u64;
    let (_, torn) = storage::for_each_history(&dir.join(HISTORY_FILE), |position, _, note| {
        f(position, note);
        history = position + 1;
        last.clear();
        last.extend_from_slice(note);
        Ok(())
    })
    .map_err(|e| defect(None, DefectKind::Unreadable, e.to_string()))?;
    if let Some(why) = torn {
        warnings.push(format!(
            "{HISTORY_FILE} has a torn tail after checkpoint #{history} ({why}): a note a crash cut short; the checkpoints before it stand"
        ));
    }
    let mut count = history;
    let mut file = None;
    let latest_path = dir.join(storage::CHECKPOINT_FILE);
    if latest_path.exists() {
        let note = storage::read_bounded(&latest_path, checkpoint::MAX_CHECKPOINT_BYTES as u64)
            .map_err(|e| defect(None, DefectKind::CheckpointMalformed, e.to_string()))?;
        if history == 0 || last != note {
            f(history, &note);
            count += 1;
            file = Some(note);
        }
    }
    Ok(Checkpoints {
        history,
        count,
        file,
    })
}

/// Streams the checkpoints [`scan_checkpoints`] found through `f` again, in the same
/// order: the first `seen.history` notes of the history (they never change; a live writer
/// only appends after them), then the `checkpoint` file's note as it was read then.
/// Checkpoints signed since are not seen: they may cover entries read before they were
/// written.
pub(super) fn rescan_checkpoints(
    dir: &Path,
    seen: &Checkpoints,
    mut f: impl FnMut(u64, &[u8]),
) -> Result<(), Defect> {
    storage::for_each_history(&dir.join(HISTORY_FILE), |position, _, note| {
        if position < seen.history {
            f(position, note);
        }
        Ok(())
    })
    .map_err(|e| defect(None, DefectKind::Unreadable, e.to_string()))?;
    if let Some(note) = &seen.file {
        f(seen.history, note);
    }
    Ok(())
}
