use super::*;
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::EncodePublicKey;
use rsa::RsaPrivateKey;

fn key_pair() -> (RsaPrivateKey, RsaPublicKey) {
    let private = RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap_or_else(|_| unreachable!());
    let public = RsaPublicKey::from(&private);
    (private, public)
}

fn hasher() -> SecretHasher {
    SecretHasher::new(
        ServerKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap_or_else(|_| unreachable!()),
    )
}

#[test]
fn pkcs1_and_spki_keys_parse_with_any_wrapping() {
    let (_, public) = key_pair();
    let pkcs1 = public.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap_or_default();
    let spki = public.to_public_key_pem(rsa::pkcs8::LineEnding::CRLF).unwrap_or_default();
    assert_eq!(parse_public_key(&pkcs1, KeyPolicy::default()), Ok(public.clone()));
    assert_eq!(parse_public_key(&spki, KeyPolicy::default()), Ok(public.clone()));
    let body: String = pkcs1.lines().filter(|line| !line.starts_with("-----")).collect();
    let rewrapped =
        format!("-----BEGIN RSA PUBLIC KEY-----\\n{}\\n{}\\n-----END RSA PUBLIC KEY-----", &body[..76], &body[76..]);
    assert_eq!(parse_public_key(&rewrapped, KeyPolicy::default()), Ok(public));
}

#[test]
fn other_keys_are_refused_with_a_reason() {
    assert_eq!(parse_public_key("hello", KeyPolicy::default()), Err(KeyError::NotPem));
    let certificate = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert_eq!(
        parse_public_key(certificate, KeyPolicy::default()),
        Err(KeyError::UnsupportedType("CERTIFICATE".into()))
    );
    let broken = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    assert!(matches!(parse_public_key(broken, KeyPolicy::default()), Err(KeyError::Malformed(_))));
}

/// A public key with modulus `n` and exponent `e` as PKCS#1 PEM.
fn public_pem(n: &BigUint, e: u32) -> String {
    let key = RsaPublicKey::new_unchecked(n.clone(), BigUint::from(e));
    key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap_or_default()
}

#[test]
fn short_moduli_and_unusual_exponents_are_refused_with_the_reason() {
    let policy = KeyPolicy::default();
    // A 512-bit key made of a real 1024-bit one's modulus cut down: only its size matters here.
    let (_, public) = key_pair();
    let short = (public.n() >> 512_usize) | BigUint::from(1_u8);
    assert_eq!(
        parse_public_key(&public_pem(&short, 65_537), policy),
        Err(KeyError::TooShort { bits: short.bits(), min_bits: 1024 })
    );
    let tiny = BigUint::from(1_u8) << 135_usize;
    assert!(matches!(
        parse_public_key(&public_pem(&(tiny + 1_u8), 65_537), policy),
        Err(KeyError::TooShort { bits: 136, .. })
    ));
    let three = public_pem(public.n(), 3);
    assert_eq!(parse_public_key(&three, policy), Err(KeyError::Exponent("3".into())));
    let message = KeyError::Exponent("3".into()).to_string();
    assert!(message.contains("exponent 3") && message.contains("65537"), "{message}");
    // A policy may allow other exponents, and may require 2048 bits.
    assert!(parse_public_key(&three, KeyPolicy { any_exponent: true, ..policy }).is_ok());
    let strict = KeyPolicy { min_bits: 2048, ..policy };
    assert_eq!(
        parse_public_key(&public_pem(public.n(), 65_537), strict),
        Err(KeyError::TooShort { bits: 1024, min_bits: 2048 })
    );
}

#[test]
fn phone_decrypts_the_code_and_padding_is_random() {
    let (private, public) = key_pair();
    let code = new_secure_code(false);
    let first = encrypt_code(&public, &code).unwrap_or_default();
    let second = encrypt_code(&public, &code).unwrap_or_default();
    assert_ne!(first, second);
    let bytes = base64::engine::general_purpose::STANDARD.decode(first).unwrap_or_default();
    assert_eq!(bytes.len(), 128);
    assert_eq!(private.decrypt(Pkcs1v15Encrypt, &bytes).unwrap_or_default(), code);
}

#[test]
fn plain_codes_are_six_ascii_digits() {
    let code = new_secure_code(true);
    assert_eq!(code.len(), PLAIN_CODE_DIGITS);
    assert!(code.iter().all(u8::is_ascii_digit));
}

#[test]
fn code_hash_is_salted_and_verifies_only_the_code() {
    let hasher = hasher();
    let token = Uuid::new_v4();
    let stored = hasher.code_hash(token, b"123456");
    assert!(hasher.code_matches(b"123456", &stored));
    assert!(!hasher.code_matches(b"123457", &stored));
    assert_ne!(hasher.code_hash(Uuid::new_v4(), b"123456"), stored, "salted per issuing token");
    assert!(!hasher.code_matches(b"123456", &stored[..16]));
    assert!(!hasher.code_matches(b"123456", &[]));
}

#[test]
fn api_secrets_match_case_insensitively_and_credentials_have_64_characters() {
    let hasher = hasher();
    let secret = new_api_credential();
    assert_eq!(secret.len(), 64);
    let stored = hasher.api_secret_hash(&secret);
    assert!(hasher.api_secret_matches(&secret.to_ascii_uppercase(), &stored));
    assert!(!hasher.api_secret_matches("wrong", &stored));
}
