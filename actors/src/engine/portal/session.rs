//! Portal sessions: the original's JWTs. HS256-signed claims holding the customer row (without
//! secrets) plus `iat` and `exp`; HS256, HS384 and HS512 are accepted, audience and issuer are
//! not checked. The server trusts the claims until they expire, as the original does.

use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::CustomerId;
use crate::store::Customer;

/// Role appended to the claims of a customer with two-factor login enabled.
pub const TWOFA_ROLE: &str = "twofa";
/// Role that opens the admin-only calls (exact array element, as the original checks).
pub const ADMIN_ROLE: &str = "admin";

/// What a verified JWT tells the server: who (id for scoping, email for password checks) and
/// with which roles. Other claims are carried but not used.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Session {
    pub id: CustomerId,
    pub email: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

impl Session {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|role| role == ADMIN_ROLE)
    }
}

/// Why a JWT was refused; each has the original's (jsonwebtoken for Node) message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// Not three dot-separated parts.
    Malformed,
    /// Header or claims are not Base64url JSON of the expected shape.
    InvalidToken,
    /// Empty signature part.
    SignatureRequired,
    /// An algorithm other than HS256/384/512.
    InvalidAlgorithm,
    InvalidSignature,
    Expired,
    /// `nbf` in the future.
    NotActive,
    /// No `exp` claim: such a token would be valid forever (the original accepted it).
    NoExpiry,
    /// The customer it names no longer exists: its sessions end with it.
    Revoked,
}

impl SessionError {
    /// The message the original's JWT middleware answers with.
    pub fn message(self) -> &'static str {
        match self {
            Self::Malformed => "jwt malformed",
            Self::InvalidToken => "invalid token",
            Self::SignatureRequired => "jwt signature is required",
            Self::InvalidAlgorithm => "invalid algorithm",
            Self::InvalidSignature => "invalid signature",
            Self::Expired => "jwt expired",
            Self::NotActive => "jwt not active",
            Self::NoExpiry => "jwt must expire: the exp claim is required",
            Self::Revoked => "The token has been revoked.",
        }
    }
}

/// The claims as the original signs them, in its key order.
#[derive(Serialize)]
struct Claims<'a> {
    id: CustomerId,
    created: Option<String>,
    email: &'a str,
    display_name: &'a Option<String>,
    roles: Vec<&'a str>,
    status: i32,
    info: &'a Option<String>,
    iat: i64,
    exp: i64,
}

pub(super) struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    valid_seconds: i64,
}

impl Jwt {
    pub(super) fn new(secret: &[u8], valid_hours: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
        validation.required_spec_claims = HashSet::from(["exp".to_owned()]);
        // `exp` and `nbf` are checked in `verify` against the caller's clock: jsonwebtoken
        // would read the system clock itself.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        let valid_seconds = i64::try_from(valid_hours.saturating_mul(3600)).unwrap_or(i64::MAX / 2);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            valid_seconds,
        }
    }

    /// Sign a session for `customer` at `now_seconds`.
    pub(super) fn sign(&self, customer: &Customer, twofa: bool, now_seconds: i64) -> Result<String, String> {
        let mut roles: Vec<&str> = customer.roles.split(',').collect();
        if twofa {
            roles.push(TWOFA_ROLE);
        }
        let claims = Claims {
            id: customer.id,
            created: DateTime::from_timestamp_millis(customer.created)
                .map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true)),
            email: &customer.email,
            display_name: &customer.display_name,
            roles,
            status: customer.status,
            info: &customer.info,
            iat: now_seconds,
            exp: now_seconds.saturating_add(self.valid_seconds),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|error| error.to_string())
    }

    /// Verify `token` at `now_seconds`: valid through its `exp` second, not before its `nbf`.
    pub(super) fn verify(&self, token: &str, now_seconds: i64) -> Result<Session, SessionError> {
        let parts: Vec<&str> = token.split('.').collect();
        if parts.len() != 3 {
            return Err(SessionError::Malformed);
        }
        if parts[2].is_empty() {
            return Err(SessionError::SignatureRequired);
        }
        let claims = match jsonwebtoken::decode::<VerifiedClaims>(token, &self.decoding, &self.validation) {
            Ok(data) => data.claims,
            Err(error) => return Err(Self::refusal(&error, &parts)),
        };
        // jsonwebtoken's order and reading: a malformed `nbf` first, then expired, then early.
        let nbf = claims.nbf.as_ref().map(|nbf| numeric_date(nbf).ok_or(SessionError::InvalidToken)).transpose()?;
        // The required `exp` was found readable, or decoding would have failed.
        let exp = claims.exp.as_ref().and_then(numeric_date).ok_or(SessionError::NoExpiry)?;
        let now = u64::try_from(now_seconds).unwrap_or(0);
        if exp < now {
            return Err(SessionError::Expired);
        }
        if nbf.is_some_and(|nbf| nbf > now) {
            return Err(SessionError::NotActive);
        }
        Ok(claims.session)
    }

    fn refusal(error: &jsonwebtoken::errors::Error, parts: &[&str]) -> SessionError {
        match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => SessionError::InvalidSignature,
            jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(claim) if claim == "exp" => SessionError::NoExpiry,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
            | jsonwebtoken::errors::ErrorKind::InvalidAlgorithmName
            | jsonwebtoken::errors::ErrorKind::UnsupportedAlgorithm => SessionError::InvalidAlgorithm,
            // Header and claims read fine, so the undecodable part is the signature: Node's
            // verifier just compares it, and finds it wrong.
            jsonwebtoken::errors::ErrorKind::Base64(_)
                if URL_SAFE_NO_PAD.decode(parts[0]).is_ok() && URL_SAFE_NO_PAD.decode(parts[1]).is_ok() =>
            {
                SessionError::InvalidSignature
            }
            _ => SessionError::InvalidToken,
        }
    }
}

/// What `verify` reads of the claims: the session, and the times it checks itself.
#[derive(Deserialize)]
struct VerifiedClaims {
    #[serde(flatten)]
    session: Session,
    #[serde(default)]
    exp: Option<serde_json::Value>,
    #[serde(default)]
    nbf: Option<serde_json::Value>,
}

/// A JWT time as jsonwebtoken reads one: a non-negative integer, or a number rounded to one.
fn numeric_date(value: &serde_json::Value) -> Option<u64> {
    let number = value.as_number()?;
    number.as_u64().or_else(|| {
        let float = number.as_f64().filter(|float| float.is_finite() && *float >= 0.0 && *float < u64::MAX as f64)?;
        Some(float.round() as u64)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// 2020-03-10T16:23:37Z: sessions are verified at the time the caller gives.
    const NOW: i64 = 1_583_857_417;

    fn customer() -> Customer {
        Customer {
            id: 7,
            created: 1_583_857_417_123,
            email: "a@b.de".into(),
            display_name: None,
            roles: "user,admin".into(),
            status: 1,
            info: None,
        }
    }

    fn claims_of(token: &str) -> String {
        let payload = token.split('.').nth(1).unwrap();
        String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    #[test]
    fn claims_have_the_original_shape_and_order() {
        let jwt = Jwt::new(b"secret", 168);
        let token = jwt.sign(&customer(), true, 1_583_857_417).unwrap();
        assert_eq!(
            claims_of(&token),
            r#"{"id":7,"created":"2020-03-10T16:23:37.123Z","email":"a@b.de","display_name":null,"roles":["user","admin","twofa"],"status":1,"info":null,"iat":1583857417,"exp":1584462217}"#
        );
        let header: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "HS256");
    }

    #[test]
    fn a_fresh_token_verifies_and_names_its_customer() {
        let jwt = Jwt::new(b"secret", 1);
        let session = jwt.verify(&jwt.sign(&customer(), false, NOW).unwrap(), NOW).unwrap();
        assert_eq!(session, Session { id: 7, email: "a@b.de".into(), roles: vec!["user".into(), "admin".into()] });
        assert!(session.is_admin());
    }

    #[test]
    fn refusals_carry_the_original_messages() {
        let jwt = Jwt::new(b"secret", 1);
        let token = jwt.sign(&customer(), false, NOW).unwrap();
        assert_eq!(jwt.verify("abc", NOW), Err(SessionError::Malformed));
        assert_eq!(jwt.verify("a.b.", NOW), Err(SessionError::SignatureRequired));
        assert_eq!(Jwt::new(b"other", 1).verify(&token, NOW), Err(SessionError::InvalidSignature));
        let expired = jwt.sign(&customer(), false, NOW - 7200).unwrap();
        assert_eq!(jwt.verify(&expired, NOW), Err(SessionError::Expired));
        assert_eq!(jwt.verify("e30.e30.c2ln", NOW), Err(SessionError::InvalidToken));
        assert_eq!(jwt.verify("@@.e30.c2ln", NOW), Err(SessionError::InvalidToken));
        let (head, _) = token.rsplit_once('.').unwrap();
        assert_eq!(jwt.verify(&format!("{head}.%%%"), NOW), Err(SessionError::InvalidSignature));
        assert_eq!(SessionError::Expired.message(), "jwt expired");
    }

    #[test]
    fn hs384_and_hs512_are_accepted() {
        let jwt = Jwt::new(b"secret", 1);
        for algorithm in [Algorithm::HS384, Algorithm::HS512] {
            let claims = serde_json::json!({"id": 3, "email": "x@y.z", "roles": ["user"], "iat": NOW, "exp": NOW + 60});
            let token =
                jsonwebtoken::encode(&Header::new(algorithm), &claims, &EncodingKey::from_secret(b"secret")).unwrap();
            assert_eq!(jwt.verify(&token, NOW).unwrap().id, 3);
        }
        let claims = serde_json::json!({"id": 3, "email": "x@y.z", "exp": NOW + 60});
        let rs = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"secret"))
            .unwrap();
        assert!(jwt.verify(&rs, NOW).unwrap().roles.is_empty());
    }

    #[test]
    fn a_token_without_expiry_is_refused() {
        let jwt = Jwt::new(b"secret", 1);
        let claims = serde_json::json!({"id": 3, "email": "x@y.z", "roles": ["user", "admin"]});
        let forever =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"secret"))
                .unwrap();
        assert_eq!(jwt.verify(&forever, NOW), Err(SessionError::NoExpiry));
        assert!(SessionError::NoExpiry.message().contains("exp"));
    }

    fn signed(claims: Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"secret")).unwrap()
    }

    #[test]
    fn a_session_is_valid_through_its_exp_second_and_not_before_its_nbf() {
        let jwt = Jwt::new(b"secret", 1);
        let until_now = signed(serde_json::json!({"id": 3, "email": "x@y.z", "exp": NOW}));
        assert!(jwt.verify(&until_now, NOW).is_ok());
        assert_eq!(jwt.verify(&until_now, NOW + 1), Err(SessionError::Expired));
        let later = signed(serde_json::json!({"id": 3, "email": "x@y.z", "exp": NOW + 60, "nbf": NOW + 10}));
        assert_eq!(jwt.verify(&later, NOW), Err(SessionError::NotActive));
        assert!(jwt.verify(&later, NOW + 10).is_ok());
        // Times are read as jsonwebtoken reads them: fractions rounded, anything else refused.
        let fraction = signed(serde_json::json!({"id": 3, "email": "x@y.z", "exp": NOW as f64 + 0.4}));
        assert!(jwt.verify(&fraction, NOW).is_ok());
        let odd_nbf = signed(serde_json::json!({"id": 3, "email": "x@y.z", "exp": NOW + 60, "nbf": "soon"}));
        assert_eq!(jwt.verify(&odd_nbf, NOW), Err(SessionError::InvalidToken));
        for exp in [serde_json::json!("never"), serde_json::json!(-1), Value::Null] {
            let odd_exp = signed(serde_json::json!({"id": 3, "email": "x@y.z", "exp": exp}));
            assert_eq!(jwt.verify(&odd_exp, NOW), Err(SessionError::NoExpiry), "exp {exp}");
        }
    }
}
