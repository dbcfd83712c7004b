//! Radiocodes: what a cash device reads from the phone (QR, EAN or typed in).

use uuid::Uuid;

/// Length of a token uuid in its canonical text form; longer radiocodes are the long form.
const UUID_TEXT_LENGTH: usize = 36;
/// Length of a plain code at the start of a short radiocode.
pub const PLAIN_CODE_LENGTH: usize = 6;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Radiocode {
    /// QR form: token uuid followed by the hex of the decrypted secure-code bytes.
    Long { token: Uuid, code: Vec<u8> },
    /// EAN/manual form: plain code followed by the secure code digits as text.
    Short { plain_code: String, code: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RadiocodeError {
    Empty,
    /// The first 36 characters of a long radiocode are not a uuid; the text is the lookup key.
    UnknownToken(String),
}

impl Radiocode {
    pub fn parse(text: &str) -> Result<Self, RadiocodeError> {
        if text.is_empty() {
            return Err(RadiocodeError::Empty);
        }
        if text.len() > UUID_TEXT_LENGTH {
            let (head, tail) = split_at_char_boundary(text, UUID_TEXT_LENGTH);
            let token = Uuid::parse_str(head).map_err(|_| RadiocodeError::UnknownToken(head.to_owned()))?;
            Ok(Self::Long { token, code: decode_hex_lenient(tail) })
        } else {
            let (head, tail) = split_at_char_boundary(text, PLAIN_CODE_LENGTH);
            Ok(Self::Short { plain_code: head.to_owned(), code: tail.as_bytes().to_vec() })
        }
    }
}

fn split_at_char_boundary(text: &str, at: usize) -> (&str, &str) {
    let mut index = at.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    text.split_at(index)
}

/// Node's `Buffer.from(s, "hex")`: stops at the first invalid pair and drops an odd nibble.
/// Kept bit-for-bit because phone apps in the field produce radiocodes this way.
pub fn decode_hex_lenient(text: &str) -> Vec<u8> {
    let digits = text.as_bytes();
    let mut bytes = Vec::with_capacity(digits.len() / 2);
    for pair in digits.chunks_exact(2) {
        match (hex_value(pair[0]), hex_value(pair[1])) {
            (Some(high), Some(low)) => bytes.push(high << 4 | low),
            _ => break,
        }
    }
    bytes
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).and_then(|value| u8::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_form_splits_uuid_and_hex_code() {
        let parsed = Radiocode::parse("256fb6a1-23c6-41b0-8e59-1824d1342d1fa1b2c3d4e5f6");
        assert_eq!(
            parsed,
            Ok(Radiocode::Long {
                token: Uuid::parse_str("256fb6a1-23c6-41b0-8e59-1824d1342d1f").unwrap_or_default(),
                code: vec![0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6],
            })
        );
    }

    #[test]
    fn short_form_splits_plain_code_and_ascii_code() {
        let parsed = Radiocode::parse("123456654321");
        assert_eq!(parsed, Ok(Radiocode::Short { plain_code: "123456".into(), code: b"654321".to_vec() }));
    }

    #[test]
    fn hex_decoding_stops_at_first_invalid_pair_and_drops_odd_nibble() {
        assert_eq!(decode_hex_lenient("a1zz33"), vec![0xa1]);
        assert_eq!(decode_hex_lenient("a1b"), vec![0xa1]);
        assert_eq!(decode_hex_lenient(""), Vec::<u8>::new());
    }

    #[test]
    fn empty_radiocode_is_an_error() {
        assert_eq!(Radiocode::parse(""), Err(RadiocodeError::Empty));
    }

    #[test]
    fn multibyte_text_never_panics() {
        assert!(Radiocode::parse("ééééééééééééééééééééééééééééééééééééé").is_err());
        assert!(Radiocode::parse("éééé").is_ok());
    }
}
