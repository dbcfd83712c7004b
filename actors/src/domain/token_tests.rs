//! Property tests of the token state machine over random command sequences.

use proptest::prelude::*;
use serde_json::json;

use super::*;

const OWNER: CustomerId = 1;
const OTHER: CustomerId = 2;

fn device(n: u8) -> Uuid {
    Uuid::from_bytes([n; 16])
}

fn open_token(token_type: TokenType, amount: i64, expires: Option<Millis>) -> Token {
    let issue = Issue {
        uuid: device(99),
        owner_id: OWNER,
        owner_device: device(1),
        token_type,
        amount,
        symbol: "EUR".into(),
        expires,
        refname: Some("ref".into()),
        clearstate: 0,
        info: Some(json!({"k": "v"})),
        plain_code: Some("123456".into()),
        secure_code: "cipher".into(),
        code_hash: vec![1, 2, 3],
    };
    match Token::issue(issue, 1_000) {
        Ok((token, _)) => token,
        Err(rejection) => panic!("issue failed: {rejection:?}"),
    }
}

fn command() -> impl Strategy<Value = TokenCommand> {
    let confirm_state = prop_oneof![
        Just(None),
        Just(Some(ConfirmState::Completed)),
        Just(Some(ConfirmState::Canceled)),
        Just(Some(ConfirmState::Failed)),
        Just(Some(ConfirmState::Rejected)),
        Just(Some(ConfirmState::Retracted)),
    ];
    prop_oneof![
        (2_u8..5, prop::bool::ANY).prop_map(|(cash, code_matches)| TokenCommand::Claim {
            cash_device: device(cash),
            cash_customer: i64::from(cash),
            code_matches,
        }),
        (2_u8..5, confirm_state, prop::option::of(-50_i64..20_000), prop::bool::ANY).prop_map(
            |(cash, state, amount, partial)| TokenCommand::Confirm {
                cash_device: device(cash),
                cash_customer: i64::from(cash),
                state,
                amount,
                lockrefname: Some("atm".into()),
                processing_info: None,
                remainder: partial.then(|| device(200)),
            }
        ),
        (prop_oneof![Just(OWNER), Just(OTHER)], prop::option::of(0_i64..5)).prop_map(|(caller, clearstate)| {
            TokenCommand::Update { caller, clearstate, info: None }
        }),
        (prop_oneof![Just(OWNER), Just(OTHER)], 1_u8..3)
            .prop_map(|(caller, n)| TokenCommand::Delete { caller, device: device(n) }),
        Just(TokenCommand::Expire),
    ]
}

fn allowed(from: TokenState, to: TokenState) -> bool {
    use TokenState::*;
    from == to
        || matches!(
            (from, to),
            (Open, Locked | Rejected | Deleted | Expired)
                | (Locked, Completed | Canceled | Failed | Rejected | Retracted)
        )
}

proptest! {
    #[test]
    fn any_command_sequence_keeps_the_invariants(
        token_type in prop_oneof![Just(TokenType::Cashout), Just(TokenType::Cashin), Just(TokenType::Other)],
        amount in 0_i64..10_000,
        commands in prop::collection::vec((command(), 0_i64..3_000), 1..25),
    ) {
        let original = open_token(token_type, amount, Some(2_000));
        let mut token = original.clone();
        let mut locks = 0;
        for (command, now) in commands {
            let before = token.clone();
            match apply(&token, &command, now) {
                Err(_) => {}
                Ok(transition) => {
                    let next = transition.token;
                    prop_assert_eq!(next.version, before.version + 1, "one version per transition");
                    prop_assert!(allowed(before.state, next.state), "{:?} -> {:?}", before.state, next.state);
                    prop_assert!(!transition.events.is_empty(), "a transition always has an event");
                    prop_assert_eq!(transition.events[0].to, next.state);
                    if next.state == TokenState::Locked && before.state != TokenState::Locked {
                        locks += 1;
                    }
                    if next.state.is_final() {
                        prop_assert!(next.plain_code.is_none() && next.secure_code.is_empty() && next.code_hash.is_none(),
                            "final states keep no codes");
                    }
                    prop_assert!(next.amount >= 0, "amounts never go negative");
                    if before.state == TokenState::Locked && next.state.is_final() && token_type == TokenType::Cashout {
                        prop_assert!(next.amount <= before.amount, "a cash-out never pays more than issued");
                    }
                    if let Some(remainder) = &transition.spawned {
                        prop_assert_eq!(remainder.amount + next.amount, before.amount, "a partial cash-out conserves money");
                        prop_assert_eq!(remainder.state, TokenState::Open);
                        prop_assert_eq!(&remainder.plain_code, &before.plain_code, "the same radiocode claims the rest");
                        prop_assert_eq!(&remainder.code_hash, &before.code_hash);
                    }
                    token = next;
                }
            }
        }
        prop_assert!(locks <= 1, "a token is locked at most once");
        prop_assert_eq!(token.uuid, original.uuid);
        prop_assert_eq!(token.owner_id, original.owner_id);
    }

    #[test]
    fn only_the_first_correct_claim_wins(claimers in prop::collection::vec(2_u8..10, 2..32)) {
        let mut token = open_token(TokenType::Cashout, 100, None);
        let mut winners = 0;
        for cash in claimers {
            let command = TokenCommand::Claim { cash_device: device(cash), cash_customer: 7, code_matches: true };
            match apply(&token, &command, 1_500) {
                Ok(transition) => {
                    winners += 1;
                    token = transition.token;
                }
                Err(rejection) => prop_assert_eq!(rejection, TokenRejection::NotOpen),
            }
        }
        prop_assert_eq!(winners, 1);
    }
}

#[test]
fn wrong_code_rejects_the_token_and_answers_invalid_code() {
    let token = open_token(TokenType::Cashout, 100, None);
    let command = TokenCommand::Claim { cash_device: device(3), cash_customer: 3, code_matches: false };
    let transition = apply(&token, &command, 1_500).unwrap_or_else(|_| panic!("a transition"));
    assert_eq!(transition.token.state, TokenState::Rejected);
    assert_eq!(transition.answer, Err(TokenRejection::InvalidCode));
    assert_eq!(transition.token.secure_code, "");
}

#[test]
fn expired_token_expires_on_claim_and_answers_not_open() {
    let token = open_token(TokenType::Cashout, 100, Some(1_200));
    let command = TokenCommand::Claim { cash_device: device(3), cash_customer: 3, code_matches: true };
    let transition = apply(&token, &command, 1_201).unwrap_or_else(|_| panic!("a transition"));
    assert_eq!(transition.token.state, TokenState::Expired);
    assert_eq!(transition.answer, Err(TokenRejection::NotOpen));
}

#[test]
fn confirm_checks_lock_device_before_state_value() {
    let token = open_token(TokenType::Cashout, 100, None);
    let confirm = TokenCommand::Confirm {
        cash_device: device(3),
        cash_customer: 3,
        state: None,
        amount: None,
        lockrefname: None,
        processing_info: None,
        remainder: None,
    };
    assert_eq!(apply(&token, &confirm, 1_500), Err(TokenRejection::LockedByAnotherDevice));
}

#[test]
fn canceling_with_amount_zero_reissues_the_full_amount_when_partial() {
    let token = open_token(TokenType::Cashout, 100, None);
    let claim = TokenCommand::Claim { cash_device: device(3), cash_customer: 3, code_matches: true };
    let locked = apply(&token, &claim, 1_500).unwrap_or_else(|_| panic!("locked")).token;
    let confirm = TokenCommand::Confirm {
        cash_device: device(3),
        cash_customer: 3,
        state: Some(ConfirmState::Canceled),
        amount: Some(0),
        lockrefname: None,
        processing_info: None,
        remainder: Some(device(9)),
    };
    let transition = apply(&locked, &confirm, 1_600).unwrap_or_else(|_| panic!("confirmed"));
    let remainder = transition.spawned.unwrap_or_else(|| panic!("a remainder"));
    assert_eq!(remainder.amount, 100);
    assert_eq!(remainder.info, Some(json!({"partial_from_uuid": token.uuid.to_string()})));
}
