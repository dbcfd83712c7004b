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
        (2_u8..5, prop::bool::ANY, prop::bool::ANY).prop_map(|(cash, signature_valid, code_matches)| {
            TokenCommand::TriggerClaim {
                cash_device: device(cash),
                cash_customer: i64::from(cash),
                signature_valid,
                code_matches,
            }
        }),
        (2_u8..5, confirm_state, prop::option::of(confirm_amount()), prop::bool::ANY).prop_map(
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
        (prop_oneof![Just(OWNER), Just(OTHER)], prop::option::of(0_i64..5))
            .prop_map(|(caller, clearstate)| { TokenCommand::Update { caller, clearstate, info: None } }),
        (prop_oneof![Just(OWNER), Just(OTHER)], 1_u8..3)
            .prop_map(|(caller, n)| { TokenCommand::Delete { caller, device: device(n) } }),
        Just(TokenCommand::Expire),
    ]
}

/// Small amounts around an issued one, and the edges of the range (cash-ins may confirm more).
fn confirm_amount() -> impl Strategy<Value = i64> {
    prop_oneof![-50_i64..20_000, Just(AMOUNT_MAX), Just(AMOUNT_MAX + 1), Just(i64::MAX), Just(i64::MIN),]
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
        amount in prop_oneof![0_i64..10_000, Just(AMOUNT_MAX)],
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
                    prop_assert!(amount_in_range(next.amount), "amounts stay within 0..=AMOUNT_MAX");
                    if before.state == TokenState::Locked && next.state.is_final() && token_type == TokenType::Cashout {
                        prop_assert!(next.amount <= before.amount, "a cash-out never pays more than issued");
                    }
                    let clears = before.state == TokenState::Locked
                        && next.state == TokenState::Completed
                        && matches!(token_type, TokenType::Cashout | TokenType::Cashin);
                    prop_assert_eq!(transition.clearing.is_some(), clears, "clearing only for completed cash-outs and cash-ins");
                    if let Some(clearing) = transition.clearing {
                        let cash = next.lock_customer_id.unwrap_or_default();
                        let expected = if token_type == TokenType::Cashout { (OWNER, cash) } else { (cash, OWNER) };
                        prop_assert_eq!((clearing.debitor, clearing.creditor), expected);
                        prop_assert_eq!(Some(clearing.at), next.updated);
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
    fn a_token_is_issued_only_with_an_expiry_that_has_a_date(
        expires in prop_oneof![
            any::<i64>(),
            Just(EXPIRES_MIN - 1),
            Just(EXPIRES_MIN),
            Just(EXPIRES_MAX),
            Just(EXPIRES_MAX + 1),
            Just(-1_594_521_770_418_259_i64),
        ],
    ) {
        let issue = Issue {
            uuid: device(99),
            owner_id: OWNER,
            owner_device: device(1),
            token_type: TokenType::Cashout,
            amount: 1,
            symbol: "EUR".into(),
            expires: Some(expires),
            refname: None,
            clearstate: 0,
            info: None,
            plain_code: None,
            secure_code: "cipher".into(),
            code_hash: vec![1],
        };
        let issued = Token::issue(issue, 1_000);
        if (0..=253_402_300_799_999).contains(&expires) {
            prop_assert!(issued.is_ok(), "{:?}", issued);
        } else {
            prop_assert_eq!(issued.err(), Some(TokenRejection::ExpiresOutOfRange));
        }
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

fn locked_by(cash: u8, token_type: TokenType) -> Token {
    let token = open_token(token_type, 100, None);
    let claim = TokenCommand::Claim { cash_device: device(cash), cash_customer: i64::from(cash), code_matches: true };
    apply(&token, &claim, 1_500).unwrap_or_else(|_| panic!("locked")).token
}

fn completed(locked: &Token, cash: u8, state: ConfirmState) -> Transition {
    let confirm = TokenCommand::Confirm {
        cash_device: device(cash),
        cash_customer: i64::from(cash),
        state: Some(state),
        amount: Some(60),
        lockrefname: None,
        processing_info: None,
        remainder: None,
    };
    apply(locked, &confirm, 1_600).unwrap_or_else(|_| panic!("confirmed"))
}

#[test]
fn a_bad_trigger_signature_rejects_the_token_even_with_the_right_code() {
    let token = open_token(TokenType::Cashout, 100, None);
    let command = TokenCommand::TriggerClaim {
        cash_device: device(3),
        cash_customer: 3,
        signature_valid: false,
        code_matches: true,
    };
    let transition = apply(&token, &command, 1_500).unwrap_or_else(|_| panic!("a transition"));
    assert_eq!(transition.token.state, TokenState::Rejected);
    assert_eq!(transition.answer, Err(TokenRejection::InvalidSignature));
    assert!(transition.token.code_hash.is_none() && transition.token.secure_code.is_empty());
    assert_eq!(transition.events[0].kind, TokenEventKind::Rejected);
}

#[test]
fn a_trigger_claim_with_signature_and_code_locks_onto_the_trigger_device() {
    let token = open_token(TokenType::Cashout, 100, None);
    let command = TokenCommand::TriggerClaim {
        cash_device: device(3),
        cash_customer: 3,
        signature_valid: true,
        code_matches: true,
    };
    let transition = apply(&token, &command, 1_500).unwrap_or_else(|_| panic!("a transition"));
    assert_eq!(transition.token.state, TokenState::Locked);
    assert_eq!(transition.token.lock_device, Some(device(3)));
    assert_eq!(transition.answer, Ok(()));
    let wrong_code = TokenCommand::TriggerClaim {
        cash_device: device(3),
        cash_customer: 3,
        signature_valid: true,
        code_matches: false,
    };
    let rejected = apply(&token, &wrong_code, 1_500).unwrap_or_else(|_| panic!("a transition"));
    assert_eq!(rejected.answer, Err(TokenRejection::InvalidCode));
}

#[test]
fn a_bad_signature_on_a_token_that_is_not_open_changes_nothing() {
    let locked = locked_by(3, TokenType::Cashout);
    let command = TokenCommand::TriggerClaim {
        cash_device: device(4),
        cash_customer: 4,
        signature_valid: false,
        code_matches: true,
    };
    assert_eq!(apply(&locked, &command, 1_550), Err(TokenRejection::NotOpen));
}

#[test]
fn completing_a_cash_out_clears_from_owner_to_cash_side() {
    let transition = completed(&locked_by(3, TokenType::Cashout), 3, ConfirmState::Completed);
    let clearing = transition.clearing.unwrap_or_else(|| panic!("a clearing"));
    assert_eq!((clearing.debitor, clearing.creditor, clearing.at), (OWNER, 3, 1_600));
    assert_eq!(transition.token.amount, 60, "the row clears the confirmed amount");
}

#[test]
fn completing_a_cash_in_clears_from_cash_side_to_owner() {
    let transition = completed(&locked_by(4, TokenType::Cashin), 4, ConfirmState::Completed);
    let clearing = transition.clearing.unwrap_or_else(|| panic!("a clearing"));
    assert_eq!((clearing.debitor, clearing.creditor), (4, OWNER));
}

#[test]
fn other_final_states_and_token_types_do_not_clear() {
    for state in [ConfirmState::Canceled, ConfirmState::Failed, ConfirmState::Rejected, ConfirmState::Retracted] {
        assert_eq!(completed(&locked_by(3, TokenType::Cashout), 3, state).clearing, None, "{state:?}");
    }
    for token_type in [TokenType::Transfer, TokenType::Payment, TokenType::Other] {
        assert_eq!(completed(&locked_by(3, token_type), 3, ConfirmState::Completed).clearing, None, "{token_type:?}");
    }
}
