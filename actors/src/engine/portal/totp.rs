//! Time-based one-time codes as the original checks them: HMAC-SHA1, 6 digits, 30 s steps,
//! only the current step accepted.

use rand::RngCore as _;
use totp_rs::{Algorithm, Builder};

/// Bytes of a new TOTP secret (160 bits, RFC 4226's recommendation; 32 base32 characters).
pub const SECRET_BYTES: usize = 20;
const DIGITS: u8 = 6;
const STEP_SECONDS: u64 = 30;
/// Steps before or after the current one that are also accepted: none, as the original.
const SKEW_STEPS: u16 = 0;
/// The issuer shown by authenticator apps, as the original names it.
const ISSUER: &str = "dncash.io";

pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0_u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// RFC 4648 base32, upper case: what authenticator apps are given.
pub fn base32(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

/// The provisioning URL the original answers: `otpauth://totp/dncash.io%20(<email>)?secret=…`.
pub fn provisioning_url(email: &str, secret: &[u8]) -> String {
    format!("otpauth://totp/{}?secret={}", encode_uri_component(&format!("{ISSUER} ({email})")), base32(secret))
}

/// Whether `code` is the current code of `secret` at `unix_seconds`.
pub fn code_matches(secret: &[u8], code: &str, unix_seconds: u64) -> bool {
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(SKEW_STEPS)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret.to_vec())
        .build();
    match totp {
        Ok(totp) => totp.check(code.trim(), unix_seconds).is_some(),
        Err(error) => {
            tracing::error!(%error, "stored TOTP secret is unusable");
            false
        }
    }
}

/// What JavaScript's `encodeURIComponent` escapes: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )`.
const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// JavaScript's `encodeURIComponent`: the rest as UTF-8 percent escapes.
fn encode_uri_component(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, URI_COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_has_the_original_shape() {
        let secret = b"12345678901234567890";
        assert_eq!(base32(secret), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            provisioning_url("a.b+c@d.de", secret),
            "otpauth://totp/dncash.io%20(a.b%2Bc%40d.de)?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }

    #[test]
    fn rfc_6238_sha1_vectors_match_at_their_time_only() {
        // RFC 6238 appendix B, SHA1, truncated to 6 digits.
        let secret = b"12345678901234567890";
        assert!(code_matches(secret, "287082", 59));
        assert!(code_matches(secret, "081804", 1_111_111_109));
        assert!(!code_matches(secret, "081804", 1_111_111_109 + 30), "the next step is refused");
        assert!(!code_matches(secret, "081804", 1_111_111_109 - 30), "the previous step is refused");
        assert!(!code_matches(secret, "", 59));
        assert!(!code_matches(secret, "28708", 59));
    }
}
