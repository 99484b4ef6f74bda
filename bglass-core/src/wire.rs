//! Strict decoding helpers shared by the signed formats: exact JSON and canonical base64url.
//!
//! Both signed formats need to tell a truncated input from one with bytes after its end
//! from one that is simply malformed, so that each has its own error.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How a byte string failed to decode.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// The input ended early.
    Truncated,
    /// Bytes follow the end of the value.
    Trailing,
    /// Anything else, with the decoder's description.
    Malformed(String),
}

/// Decodes exactly one JSON value from `bytes`, allowing only trailing whitespace.
pub(crate) fn json_exact<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Shape> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(&mut de).map_err(|e| match e.classify() {
        serde_json::error::Category::Eof => Shape::Truncated,
        _ => Shape::Malformed(e.to_string()),
    })?;
    de.end().map_err(|_| Shape::Trailing)?;
    Ok(value)
}

/// Decodes canonical unpadded base64url (non-canonical trailing bits are refused, so one
/// value has exactly one encoding).
pub(crate) fn b64_decode(text: &str) -> Result<Vec<u8>, Shape> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| Shape::Malformed(format!("invalid base64url: {e}")))
}

/// Encodes unpadded base64url.
pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A 64-byte signature from base64url, telling short from long.
pub(crate) fn signature(text: &str) -> Result<[u8; crate::keys::SIGNATURE_LEN], Shape> {
    let bytes = b64_decode(text)?;
    match bytes.len().cmp(&crate::keys::SIGNATURE_LEN) {
        std::cmp::Ordering::Less => Err(Shape::Truncated),
        std::cmp::Ordering::Greater => Err(Shape::Trailing),
        std::cmp::Ordering::Equal => {
            let mut sig = [0u8; crate::keys::SIGNATURE_LEN];
            sig.copy_from_slice(&bytes);
            Ok(sig)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct T {
        a: u8,
    }

    #[test]
    fn json_shapes() {
        assert_eq!(json_exact::<T>(br#"{"a":1} "#), Ok(T { a: 1 }));
        assert_eq!(json_exact::<T>(br#"{"a":1"#), Err(Shape::Truncated));
        assert_eq!(json_exact::<T>(br#"{"a":1}x"#), Err(Shape::Trailing));
        assert!(matches!(
            json_exact::<T>(br#"{"a":"x"}"#),
            Err(Shape::Malformed(_))
        ));
    }

    #[test]
    fn base64_is_canonical() {
        assert_eq!(b64_decode("AQ"), Ok(vec![1]));
        // "AR" decodes to the same byte with non-zero trailing bits: refused.
        assert!(b64_decode("AR").is_err());
        assert!(b64_decode("AQ==").is_err());
    }
}
