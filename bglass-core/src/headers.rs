//! The hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, not the message,
//! so neither the proxy nor the CLI's `bglass open` forwarder relays them, and a catalog may
//! not inject them. One list, so that the three cannot disagree.

/// Hop-by-hop headers, lowercase.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` (any case) is a hop-by-hop header.
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_ignores_case() {
        assert!(is_hop_by_hop("Connection"));
        assert!(is_hop_by_hop("TRANSFER-ENCODING"));
        assert!(!is_hop_by_hop("authorization"));
        assert!(!is_hop_by_hop("host"));
    }
}
