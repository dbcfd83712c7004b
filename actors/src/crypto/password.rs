//! Portal passwords: argon2id with a random salt per password, stored as a PHC string (the
//! original stored an unsalted SHA-256). Hashing is deliberately slow; callers on an async
//! runtime run it on a blocking thread.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::Argon2;
use rand::{Rng as _, RngCore as _};

/// Shortest password accepted at registration and on change (the original's rule).
pub const PASSWORD_LENGTH_MIN: usize = 8;
/// Length of a generated initial password (admin-created users), as the original.
pub const INITIAL_PASSWORD_LENGTH: usize = 16;
/// The original's alphabet for initial passwords.
const INITIAL_PASSWORD_ALPHABET: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!@#$%^&*()+_-=}{[]|:;\"/?.><,`~";
const SALT_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct PasswordError(String);

/// argon2id (v19) with the crate's defaults: 19 MiB, 2 passes, 1 lane (OWASP's minimum).
fn argon2() -> Argon2<'static> {
    Argon2::default()
}

/// Hash a password into a PHC string (`$argon2id$v=19$m=…$salt$hash`).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0_u8; SALT_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|error| PasswordError(error.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| PasswordError(error.to_string()))
}

/// Whether `password` matches the stored PHC string. A missing or unreadable hash never
/// matches, but costs the same time as a real check, so the answer time does not tell whether
/// an account exists.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    let parsed = stored.and_then(|text| PasswordHash::new(text).ok());
    match parsed {
        Some(hash) => argon2().verify_password(password.as_bytes(), &hash).is_ok(),
        None => {
            if let Some(Ok(dummy)) = dummy_hash().map(PasswordHash::new) {
                let _ = argon2().verify_password(password.as_bytes(), &dummy);
            }
            false
        }
    }
}

/// A hash of a random password, computed once, to spend equal time on unknown accounts.
fn dummy_hash() -> Option<&'static str> {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&new_initial_password()).ok()).as_deref()
}

/// Whether a new password is long enough (characters, not bytes).
pub fn password_is_acceptable(password: &str) -> bool {
    password.chars().count() >= PASSWORD_LENGTH_MIN
}

/// 16 random characters of the original's alphabet, for users an admin creates.
pub fn new_initial_password() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..INITIAL_PASSWORD_LENGTH)
        .map(|_| char::from(INITIAL_PASSWORD_ALPHABET[rng.gen_range(0..INITIAL_PASSWORD_ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify_password("correct horse", Some(&hash)));
        assert!(!verify_password("correct horsf", Some(&hash)));
    }

    #[test]
    fn equal_passwords_hash_differently() {
        assert_ne!(hash_password("password1").unwrap(), hash_password("password1").unwrap());
    }

    #[test]
    fn missing_or_garbage_hashes_never_match() {
        assert!(!verify_password("anything", None));
        assert!(!verify_password("anything", Some("")));
        assert!(!verify_password("anything", Some("5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8")));
    }

    #[test]
    fn initial_passwords_use_the_original_alphabet() {
        let password = new_initial_password();
        assert_eq!(password.chars().count(), INITIAL_PASSWORD_LENGTH);
        assert!(password.bytes().all(|byte| INITIAL_PASSWORD_ALPHABET.contains(&byte)));
        assert_ne!(password, new_initial_password());
    }

    #[test]
    fn the_length_rule_counts_characters() {
        assert!(!password_is_acceptable("1234567"));
        assert!(password_is_acceptable("12345678"));
        assert!(password_is_acceptable("äöüäöüäö"));
    }
}
