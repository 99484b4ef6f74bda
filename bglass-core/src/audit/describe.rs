//! One line about an event, for `bglass audit show`, CSV exports and the review's timeline.

use super::event::Event;
use crate::timestamp;

/// One line of detail about an event, for tables and CSV.
pub fn detail(event: &Event) -> String {
    use super::event::EventKind as K;
    match &event.event {
        K::ProxyStart { key, version, .. } => format!("key {key}, bglass {version}"),
        K::ProxyStop { reason } => reason.clone(),
        K::Request {
            request,
            ttl_secs,
            emergency,
            reason,
            incident,
            ..
        } => format!(
            "{request} ttl {ttl_secs}s{} incident {incident}: {reason}",
            // The bypass caps an emergency grant's TTL: the grant entry has the real one.
            if *emergency { " asked, EMERGENCY" } else { "" }
        ),
        K::Approval { request, .. } => format!("approved {request}"),
        K::Denial { reason, detail, .. } => format!("{reason}: {detail}"),
        K::Grant {
            request,
            nbf,
            exp,
            emergency,
            ..
        } => format!(
            "for {request}, {} to {} (ttl {}s){}",
            timestamp::format_secs(*nbf),
            timestamp::format_secs(*exp),
            exp.saturating_sub(*nbf),
            if *emergency {
                " EMERGENCY (review required)"
            } else {
                ""
            }
        ),
        K::UseStart { method, path, .. } => format!("{method} {path} (forwarding)"),
        K::Use {
            method,
            path,
            status,
            bytes_in,
            bytes_out,
            duration_ms,
            ..
        } => format!(
            "{method} {path} -> {status}, {bytes_in}B in, {bytes_out}B out, {duration_ms}ms"
        ),
        K::SshCertificate {
            principals,
            valid_before,
            serial,
            ..
        } => format!(
            "SSH certificate {serial} for {} until {}",
            principals.join(","),
            timestamp::format_secs(*valid_before)
        ),
        K::TunnelOpen { tunnel, .. } => format!("tunnel {tunnel} open"),
        K::TunnelClose {
            tunnel,
            bytes_up,
            bytes_down,
            reason,
            ..
        } => format!("tunnel {tunnel} closed ({reason}), {bytes_up}B up, {bytes_down}B down"),
        K::Revoke { reason, .. } => reason.clone(),
        K::Expiry { .. } => "expired".to_owned(),
        K::Review { note, .. } => note.clone(),
        K::ConfigReload {
            file,
            accepted,
            error,
            signers,
            changes,
            ..
        } => match (accepted, error) {
            (true, _) => {
                let mut text = format!("{file} reloaded");
                if !signers.is_empty() {
                    text.push_str(&format!(" (signed by {})", signers.join(", ")));
                }
                for c in changes {
                    text.push_str(&format!("; {c}"));
                }
                text
            }
            (false, Some(e)) => format!("{file} REJECTED: {e}"),
            (false, None) => format!("{file} REJECTED"),
        },
        K::DrillStart { scenario, .. } => format!("scenario {scenario}"),
        K::DrillStop {} => String::new(),
        K::DrillResult { .. } => "result recorded".to_owned(),
        K::LogRollback {
            published_size,
            size,
            ..
        } => format!(
            "ROLLBACK accepted by the operator: started on {size} entries, {published_size} had been published"
        ),
        K::LogFailed { error } => format!("AUDIT LOG FAILED, access refused: {error}"),
        K::LogRecovered { failed_ms, error } => format!(
            "audit log recovered, access resumed (failed since {}: {error})",
            timestamp::format_ms(*failed_ms)
        ),
        K::StorageLow {
            free_bytes,
            threshold_bytes,
        } => format!("LOW DISK SPACE: {free_bytes} bytes free, below {threshold_bytes}"),
        K::StorageOk { free_bytes } => format!("disk space back: {free_bytes} bytes free"),
        K::SigningKeyRotated { transition } => format!(
            "SIGNING KEY ROTATED: {} -> {} (signed by both keys)",
            transition.old, transition.new
        ),
        K::CanaryReport { results } => {
            let broken: Vec<String> = results
                .iter()
                .filter(|p| !p.ok)
                .map(|p| format!("{} at {}", p.service, p.step.as_deref().unwrap_or("?")))
                .collect();
            if broken.is_empty() {
                format!("canary: {} pathways ready", results.len())
            } else {
                format!(
                    "canary: {} of {} pathways BROKEN: {}",
                    broken.len(),
                    results.len(),
                    broken.join(", ")
                )
            }
        }
        K::RecordingStart { session, user, .. } => {
            format!("recorded session {session} as {user} started")
        }
        K::RecordingChunks {
            session,
            first,
            chunks,
        } => format!(
            "recording {session}: chunks {first}..{} ({} bytes)",
            first + chunks.len() as u64,
            chunks.iter().map(|c| c.bytes).sum::<u64>()
        ),
        K::RecordingEnd {
            session,
            chunks,
            bytes,
            reason,
            ..
        } => format!("recorded session {session} ended ({reason}): {chunks} chunks, {bytes} bytes"),
        K::AuditRead { what, count } => format!("read the log's {what} ({count} reads)"),
    }
}
