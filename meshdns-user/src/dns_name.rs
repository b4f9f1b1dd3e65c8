//! Service names to DNS names in wire format (RFC 1035 §3.1).

use meshdns_common::{MAX_LABEL_LEN, MAX_NAME_LEN};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("empty name")]
    Empty,
    #[error("empty label (two dots in a row, or a leading or trailing dot)")]
    EmptyLabel,
    #[error("label {label:?} is {len} bytes, more than 63")]
    LabelTooLong { label: String, len: usize },
    #[error("name is {len} bytes in wire format, more than 255")]
    NameTooLong { len: usize },
    #[error("character {0:?} is not allowed (letters, digits, '-' and '_' only)")]
    BadCharacter(char),
}

/// Encodes a dotted name (no trailing dot) followed by `zone` into wire
/// format, lowercased. Labels may hold letters, digits, `-` and `_` (service
/// names such as Kuma's `echo-server_echo-example_svc_1010` use `_`).
pub fn to_wire(name: &str, zone: &str) -> Result<Vec<u8>, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    from_text(&format!("{name}.{zone}"))
}

/// Encodes an absolute dotted name, trailing dot optional, into wire
/// format, lowercased.
pub fn from_text(text: &str) -> Result<Vec<u8>, NameError> {
    let text = text.strip_suffix('.').unwrap_or(text);
    let mut wire = Vec::with_capacity(text.len() + 2);
    for label in text.split('.') {
        if label.is_empty() {
            return Err(NameError::EmptyLabel);
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(NameError::BadCharacter(bad));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(NameError::LabelTooLong {
                label: label.to_string(),
                len: label.len(),
            });
        }
        wire.push(label.len() as u8);
        wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    wire.push(0);
    if wire.len() > MAX_NAME_LEN {
        return Err(NameError::NameTooLong { len: wire.len() });
    }
    Ok(wire)
}

/// The dotted, lowercased text of a wire-format name, with a trailing dot.
pub fn to_text(wire: &[u8]) -> String {
    let mut text = String::new();
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 {
            break;
        }
        let label = wire
            .get(pos + 1..pos + 1 + len as usize)
            .unwrap_or_default();
        text.push_str(&String::from_utf8_lossy(label));
        text.push('.');
        pos += 1 + len as usize;
    }
    if text.is_empty() {
        text.push('.');
    }
    text
}

/// Whether `name` (lowercased wire format) is `apex` or below it; never
/// for an empty apex (no zone).
pub fn is_at_or_below(name: &[u8], apex: &[u8]) -> bool {
    let mut rest = name;
    while !apex.is_empty() && rest.len() >= apex.len() {
        if rest == apex {
            return true;
        }
        rest = &rest[1 + usize::from(rest[0])..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1035_3_1_wire_format_is_length_prefixed_labels_and_root() {
        assert_eq!(to_wire("Redis", "mesh").unwrap(), b"\x05redis\x04mesh\x00");
        assert_eq!(to_text(b"\x05redis\x04mesh\x00"), "redis.mesh.");
    }

    #[test]
    fn rfc1035_2_3_4_label_and_name_limits() {
        let label63 = "a".repeat(63);
        assert!(to_wire(&label63, "mesh").is_ok());
        assert!(matches!(
            to_wire(&"a".repeat(64), "mesh"),
            Err(NameError::LabelTooLong { len: 64, .. })
        ));
        // 3 labels of 63 + one of 61 + "mesh": 4*64 - 2 + 5 + 1 = 260 > 255.
        let long = [label63.as_str(); 3].join(".") + "." + &"b".repeat(61);
        assert!(matches!(
            to_wire(&long, "mesh"),
            Err(NameError::NameTooLong { .. })
        ));
        // Exactly 255: 3*64 + (1+56) + (1+4) + 1.
        let exact = [label63.as_str(); 3].join(".") + "." + &"b".repeat(56);
        assert_eq!(to_wire(&exact, "mesh").unwrap().len(), 255);
    }

    #[test]
    fn rejects_empty_labels_and_bad_characters() {
        assert_eq!(to_wire("", "mesh"), Err(NameError::Empty));
        assert_eq!(to_wire("a..b", "mesh"), Err(NameError::EmptyLabel));
        assert_eq!(to_wire("a b", "mesh"), Err(NameError::BadCharacter(' ')));
        assert_eq!(
            from_text("svc.Cluster.local.").unwrap(),
            b"\x03svc\x07cluster\x05local\x00"
        );
        assert_eq!(from_text(""), Err(NameError::EmptyLabel));
    }
}
