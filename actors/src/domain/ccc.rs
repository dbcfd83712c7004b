//! A user of the Crypto Capital account API (fact sheet §4.2–4.4): a Bitcoin address that
//! registered with its name, e-mail, country and preferred currency, and that an operator may
//! verify (KYC) and give an IBAN. Its money is in ledger accounts owned by the address, one
//! per currency; this entity is only the profile. Kept in the generic entity tables.

use serde::{Deserialize, Serialize};

use super::{Change, Entity, Millis};

/// Longest name, street address and e-mail address a user may register.
pub const NAME_MAX_CHARS: usize = 200;
pub const ADDRESS_MAX_CHARS: usize = 500;
pub const EMAIL_MAX_CHARS: usize = 254;
/// Longest phone number: `+` and up to 15 digits (E.164), with spaces allowed.
pub const PHONE_MAX_CHARS: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CccUser {
    /// The Bitcoin address it authenticates with.
    pub address: String,
    pub version: i64,
    #[serde(flatten)]
    pub profile: Profile,
    pub verified: bool,
    /// Assigned when verified.
    pub iban: Option<String>,
    pub created: Millis,
    pub updated: Millis,
}

/// What a user tells about itself (`register`, `setinfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub email: String,
    /// ISO 3166 alpha-2.
    pub country: String,
    /// ISO 4217 code of the preferred currency (the ledger's table says which exist).
    pub currency: String,
    /// The street address (`address` on the wire).
    pub street: Option<String>,
    pub phone: Option<String>,
}

impl Profile {
    fn check(&self) -> Result<(), UserRejection> {
        check_name(&self.name)?;
        check_email(&self.email)?;
        check_country(&self.country)?;
        check_currency(&self.currency)?;
        check_optional(self.street.as_deref(), check_street)?;
        check_optional(self.phone.as_deref(), check_phone)
    }
}

/// What `register` gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub address: String,
    pub profile: Profile,
}

/// What `setinfo` may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InfoChanges {
    pub name: Option<String>,
    pub email: Option<String>,
    pub country: Option<String>,
    pub currency: Option<String>,
    pub street: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    SetInfo(InfoChanges),
    /// KYC done: the user may send to IBANs, and receives from its own.
    Verify {
        iban: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum UserEvent {
    Registered { at: Millis },
    InfoChanged { at: Millis, country_changed: bool },
    Verified { at: Millis, iban: String },
}

/// Why a registration or change is refused: the field at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRejection {
    Name,
    Email,
    Country,
    Currency,
    Street,
    Phone,
    /// Verified already (with an IBAN that stays).
    AlreadyVerified,
}

impl UserRejection {
    /// The `error` message's text.
    pub fn message(self) -> &'static str {
        match self {
            Self::Name => "Invalid name: 1-200 printable characters",
            Self::Email => "Invalid email",
            Self::Country => "Invalid country: an ISO 3166 alpha-2 code such as PA",
            Self::Currency => "Invalid currency: an ISO 4217 code such as USD",
            Self::Street => "Invalid address: up to 500 printable characters",
            Self::Phone => "Invalid phone: + and the number with its country code",
            Self::AlreadyVerified => "Already verified",
        }
    }
}

/// An IBAN in its electronic form (no spaces), when `text` is one in either form: its
/// country's format and its check digits (crate `iban_validate`).
pub fn parse_iban(text: &str) -> Option<String> {
    use iban::IbanLike as _;
    text.parse::<iban::Iban>().ok().map(|iban| iban.electronic_str().to_owned())
}

fn printable(text: &str, max: usize) -> bool {
    !text.trim().is_empty() && text.chars().count() <= max && !text.chars().any(char::is_control)
}

fn check_name(name: &str) -> Result<(), UserRejection> {
    printable(name, NAME_MAX_CHARS).then_some(()).ok_or(UserRejection::Name)
}

fn check_email(email: &str) -> Result<(), UserRejection> {
    let valid = printable(email, EMAIL_MAX_CHARS)
        && !email.contains(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        });
    valid.then_some(()).ok_or(UserRejection::Email)
}

fn check_country(country: &str) -> Result<(), UserRejection> {
    (country.len() == 2 && country.bytes().all(|byte| byte.is_ascii_uppercase()))
        .then_some(())
        .ok_or(UserRejection::Country)
}

/// The code's shape; whether the ledger knows it is the caller's check.
fn check_currency(currency: &str) -> Result<(), UserRejection> {
    (currency.len() == 3 && currency.bytes().all(|byte| byte.is_ascii_uppercase()))
        .then_some(())
        .ok_or(UserRejection::Currency)
}

fn check_street(street: &str) -> Result<(), UserRejection> {
    printable(street, ADDRESS_MAX_CHARS).then_some(()).ok_or(UserRejection::Street)
}

fn check_phone(phone: &str) -> Result<(), UserRejection> {
    let digits = phone.bytes().filter(u8::is_ascii_digit).count();
    let valid = phone.len() <= PHONE_MAX_CHARS
        && phone.starts_with('+')
        && phone[1..].bytes().all(|byte| byte.is_ascii_digit() || byte == b' ')
        && (7..=15).contains(&digits);
    valid.then_some(()).ok_or(UserRejection::Phone)
}

fn check_optional(value: Option<&str>, check: fn(&str) -> Result<(), UserRejection>) -> Result<(), UserRejection> {
    value.map_or(Ok(()), check)
}

impl Entity for CccUser {
    const KIND: &'static str = "ccc_user";
    type Id = String;
    type Create = Registration;
    type Command = UserCommand;
    type Event = UserEvent;
    type Rejection = UserRejection;
    type Transition = Change<Self>;

    fn id(&self) -> String {
        self.address.clone()
    }

    fn version(&self) -> i64 {
        self.version
    }

    fn is_final(&self) -> bool {
        false
    }

    fn create(registration: Registration, now: Millis) -> Result<Change<Self>, UserRejection> {
        registration.profile.check()?;
        let Registration { address, profile } = registration;
        let user = Self { address, version: 1, profile, verified: false, iban: None, created: now, updated: now };
        Ok(Change { entity: user, events: vec![UserEvent::Registered { at: now }] })
    }

    fn apply(&self, command: &UserCommand, now: Millis) -> Result<Change<Self>, UserRejection> {
        let mut next = Self { version: self.version + 1, updated: now, ..self.clone() };
        let event = match command {
            UserCommand::SetInfo(changes) => {
                let profile = &mut next.profile;
                let take = |change: &Option<String>, field: &mut String| {
                    if let Some(value) = change {
                        field.clone_from(value);
                    }
                };
                take(&changes.name, &mut profile.name);
                take(&changes.email, &mut profile.email);
                take(&changes.country, &mut profile.country);
                take(&changes.currency, &mut profile.currency);
                if changes.street.is_some() {
                    profile.street.clone_from(&changes.street);
                }
                if changes.phone.is_some() {
                    profile.phone.clone_from(&changes.phone);
                }
                profile.check()?;
                UserEvent::InfoChanged { at: now, country_changed: profile.country != self.profile.country }
            }
            UserCommand::Verify { .. } if self.verified => return Err(UserRejection::AlreadyVerified),
            UserCommand::Verify { iban } => {
                next.verified = true;
                next.iban = Some(iban.clone());
                UserEvent::Verified { at: now, iban: iban.clone() }
            }
        };
        Ok(Change { entity: next, events: vec![event] })
    }

    fn index_columns(&self) -> Vec<(&'static str, String)> {
        self.iban.iter().map(|iban| ("iban", iban.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration() -> Registration {
        let profile = Profile {
            name: "Ada Lovelace".into(),
            email: "ada@example.com".into(),
            country: "PA".into(),
            currency: "USD".into(),
            street: None,
            phone: Some("+5071231234".into()),
        };
        Registration { address: "1HZwkjkeaoZfTSaJxDw6aKkxp45agDiEzN".into(), profile }
    }

    fn registered() -> CccUser {
        CccUser::create(registration(), 1).map(|change| change.entity).unwrap_or_else(|error| panic!("{error:?}"))
    }

    #[test]
    fn a_registration_is_checked_field_by_field() {
        let user = registered();
        assert_eq!((user.version, user.verified, user.iban.as_deref()), (1, false, None));
        let refused = |change: fn(&mut Profile)| {
            let mut registration = registration();
            change(&mut registration.profile);
            CccUser::create(registration, 1).err()
        };
        assert_eq!(refused(|r| r.name = " ".into()), Some(UserRejection::Name));
        assert_eq!(refused(|r| r.name = "a\u{0}b".into()), Some(UserRejection::Name));
        assert_eq!(refused(|r| r.email = "ada".into()), Some(UserRejection::Email));
        assert_eq!(refused(|r| r.email = "ada@localhost".into()), Some(UserRejection::Email));
        assert_eq!(refused(|r| r.country = "Panama".into()), Some(UserRejection::Country));
        assert_eq!(refused(|r| r.currency = "usd".into()), Some(UserRejection::Currency));
        assert_eq!(refused(|r| r.phone = Some("5071231234".into())), Some(UserRejection::Phone));
        assert_eq!(refused(|r| r.street = Some("x".repeat(501))), Some(UserRejection::Street));
    }

    #[test]
    fn setinfo_changes_only_what_it_names() {
        let user = registered();
        let changes = InfoChanges { email: Some("ada@example.org".into()), ..InfoChanges::default() };
        let change = user.apply(&UserCommand::SetInfo(changes), 5).unwrap_or_else(|error| panic!("{error:?}"));
        assert_eq!(change.entity.profile.email, "ada@example.org");
        let (name, version, updated) =
            (change.entity.profile.name.as_str(), change.entity.version, change.entity.updated);
        assert_eq!((name, version, updated), ("Ada Lovelace", 2, 5));
        assert_eq!(change.events, [UserEvent::InfoChanged { at: 5, country_changed: false }]);
        let bad = InfoChanges { email: Some("x".into()), name: Some("Eve".into()), ..InfoChanges::default() };
        assert_eq!(user.apply(&UserCommand::SetInfo(bad), 5).err(), Some(UserRejection::Email));
    }

    #[test]
    fn ibans_are_checked_by_country_format_and_check_digits() {
        assert_eq!(parse_iban("DE44500105175407324931").as_deref(), Some("DE44500105175407324931"));
        assert_eq!(parse_iban("DE44 5001 0517 5407 3249 31").as_deref(), Some("DE44500105175407324931"));
        assert_eq!(parse_iban("DE45500105175407324931"), None, "wrong check digits");
        assert_eq!(parse_iban("DE4450010517540732493"), None, "one digit short for Germany");
        assert_eq!(parse_iban("not an iban"), None);
    }

    #[test]
    fn a_user_is_verified_once_with_its_iban() {
        let user = registered();
        let iban = "PA00CCCX0000000000000001".to_owned();
        let verified = user
            .apply(&UserCommand::Verify { iban: iban.clone() }, 9)
            .map(|change| change.entity)
            .unwrap_or_else(|error| panic!("{error:?}"));
        assert!(verified.verified);
        assert_eq!(verified.index_columns(), [("iban", iban.clone())]);
        assert_eq!(verified.apply(&UserCommand::Verify { iban }, 10).err(), Some(UserRejection::AlreadyVerified));
    }
}
