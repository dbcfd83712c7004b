//! Clearing: who owes whom when a token is settled.
//!
//! A clearing row is written only when a token is confirmed COMPLETED and it is a cash-out or
//! a cash-in (spec §8.3). For a cash-out the issuing bank (the token's owner) owes the cash
//! side that paid the money out; for a cash-in the cash side that took the money owes the
//! owner. Transfers, payments and other tokens never clear here.

use super::token::{TokenState, TokenType};
use super::{CustomerId, Millis};

/// The parties of one clearing row, decided with the confirm that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clearing {
    pub debitor: CustomerId,
    pub creditor: CustomerId,
    /// When the token was confirmed; the row's date.
    pub at: Millis,
}

/// The clearing a confirm into `state` produces, if any. `owner` issued the token; `cash` is
/// the customer whose cash device confirmed it.
pub fn clearing_for(
    token_type: TokenType,
    state: TokenState,
    owner: CustomerId,
    cash: CustomerId,
    at: Millis,
) -> Option<Clearing> {
    if state != TokenState::Completed {
        return None;
    }
    let (debitor, creditor) = match token_type {
        TokenType::Cashout => (owner, cash),
        TokenType::Cashin => (cash, owner),
        TokenType::Transfer | TokenType::Payment | TokenType::Other => return None,
    };
    Some(Clearing { debitor, creditor, at })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_completed_cash_out_is_owed_by_the_owner_to_the_cash_side() {
        let clearing = clearing_for(TokenType::Cashout, TokenState::Completed, 1, 2, 7);
        assert_eq!(clearing, Some(Clearing { debitor: 1, creditor: 2, at: 7 }));
    }

    #[test]
    fn a_completed_cash_in_is_owed_by_the_cash_side_to_the_owner() {
        let clearing = clearing_for(TokenType::Cashin, TokenState::Completed, 1, 2, 7);
        assert_eq!(clearing, Some(Clearing { debitor: 2, creditor: 1, at: 7 }));
    }

    #[test]
    fn the_same_customer_on_both_sides_still_clears() {
        let clearing = clearing_for(TokenType::Cashout, TokenState::Completed, 4, 4, 7);
        assert_eq!(clearing, Some(Clearing { debitor: 4, creditor: 4, at: 7 }));
    }

    fn any_type() -> impl Strategy<Value = TokenType> {
        prop::sample::select(TokenType::ALL.to_vec())
    }

    fn any_state() -> impl Strategy<Value = TokenState> {
        prop::sample::select(TokenState::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn only_completed_cash_outs_and_cash_ins_clear(
            token_type in any_type(),
            state in any_state(),
            owner in 1_i64..1_000,
            cash in 1_i64..1_000,
            at in 0_i64..i64::MAX,
        ) {
            let clearing = clearing_for(token_type, state, owner, cash, at);
            let clears = state == TokenState::Completed
                && matches!(token_type, TokenType::Cashout | TokenType::Cashin);
            prop_assert_eq!(clearing.is_some(), clears);
            if let Some(clearing) = clearing {
                prop_assert_eq!(clearing.at, at);
                // The two parties are exactly the owner and the cash side, in some order.
                let mut parties = [clearing.debitor, clearing.creditor];
                let mut expected = [owner, cash];
                parties.sort_unstable();
                expected.sort_unstable();
                prop_assert_eq!(parties, expected);
                // The debitor is the side the money flows from.
                let debitor = if token_type == TokenType::Cashout { owner } else { cash };
                prop_assert_eq!(clearing.debitor, debitor);
            }
        }
    }
}
