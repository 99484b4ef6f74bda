//! The head check of the verifier's reader threads: an entry of a log starts as the log's
//! events do, recorded by the proxy of entry 0, so most entries need not be parsed whole
//! (the hash covers the rest).

/// Checks that an entry is a version-1 event of `proxy`, as the log writes them: the event
/// encoding is canonical (fields in a fixed order), so the head of the JSON object is
/// checked byte for byte instead of parsing the whole entry; the hash covers the rest.
/// `bglass audit show` and `report` parse every entry fully.
pub(super) fn check_head(entry: &[u8], proxy: &str) -> Result<(), HeadError> {
    const START: &[u8] = b"{\"v\":1,\"time_ms\":";
    let rest = entry.strip_prefix(START).ok_or(HeadError::Start)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 {
        return Err(HeadError::Time);
    }
    let rest = rest[digits..]
        .strip_prefix(b",\"proxy\":\"")
        .ok_or(HeadError::Proxy)?;
    let rest = rest
        .strip_prefix(proxy.as_bytes())
        .and_then(|r| r.strip_prefix(b"\",\"actor\":"))
        .ok_or_else(|| HeadError::OtherProxy {
            proxy: proxy.to_owned(),
        })?;
    if rest.last() != Some(&b'}') || rest.len() < 10 {
        return Err(HeadError::End);
    }
    Ok(())
}

/// Why an entry's head is not that of an event of this log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum HeadError {
    /// It does not start as an event does.
    #[error("not a bglass event of this log: it does not start with {{\"v\":1,\"time_ms\":")]
    Start,
    /// Its time is not a number.
    #[error("not a bglass event of this log: time_ms is not a number")]
    Time,
    /// No proxy after the time.
    #[error("not a bglass event of this log: proxy does not follow time_ms")]
    Proxy,
    /// Another proxy recorded it.
    #[error("recorded by another proxy than {proxy}, the proxy of entry 0")]
    OtherProxy {
        /// The proxy of entry 0.
        proxy: String,
    },
    /// It does not end the JSON object.
    #[error("not a bglass event of this log: it does not end the JSON object")]
    End,
}
