//! What a transfer does to one account, as the store applies it: signed changes of its four
//! sums, and the checks the store repeats against the stored row. The account actors decide on
//! balances they hold in memory; the store adds these changes to the row only if the row still
//! keeps the account's limits afterwards, so a decision on a stale or optimistic balance can
//! fail its commit but never break a limit.

use super::account::{Account, AccountId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posting {
    pub account: AccountId,
    pub debits_pending: i64,
    pub debits_posted: i64,
    pub credits_pending: i64,
    pub credits_posted: i64,
    /// The change adds money on a side with a limit: the store checks the limits after it.
    /// (Releasing or posting within a hold never takes an account further from its limits, so
    /// it is not checked, as the domain does not check it.)
    pub check_limits: bool,
    /// The account must not be frozen (anything but releasing a hold).
    pub must_be_open: bool,
}

impl Posting {
    /// No change to `account`.
    pub fn zero(account: AccountId) -> Self {
        Self {
            account,
            debits_pending: 0,
            debits_posted: 0,
            credits_pending: 0,
            credits_posted: 0,
            check_limits: false,
            must_be_open: false,
        }
    }

    /// Changes no sum and checks nothing.
    pub fn is_zero(&self) -> bool {
        *self == Self::zero(self.account)
    }

    /// The change from `before` to `after` of one account. `None` when a difference leaves 64
    /// bits, which balances within [`super::Balances::MAX`] never do.
    pub fn between(before: &Account, after: &Account, must_be_open: bool) -> Option<Self> {
        let change = |from: u128, to: u128| i64::try_from(to as i128 - from as i128).ok();
        let (old, new) = (&before.balances, &after.balances);
        let posting = Self {
            account: after.id,
            debits_pending: change(old.debits_pending, new.debits_pending)?,
            debits_posted: change(old.debits_posted, new.debits_posted)?,
            credits_pending: change(old.credits_pending, new.credits_pending)?,
            credits_posted: change(old.credits_posted, new.credits_posted)?,
            check_limits: false,
            must_be_open,
        };
        let adds_debits = posting.debits_pending.saturating_add(posting.debits_posted) > 0;
        let adds_credits = posting.credits_pending.saturating_add(posting.credits_posted) > 0;
        Some(Self { check_limits: adds_debits || adds_credits, ..posting })
    }

    /// This change followed by `next` of the same account, as one. `None` on overflow.
    pub fn then(self, next: &Self) -> Option<Self> {
        Some(Self {
            account: self.account,
            debits_pending: self.debits_pending.checked_add(next.debits_pending)?,
            debits_posted: self.debits_posted.checked_add(next.debits_posted)?,
            credits_pending: self.credits_pending.checked_add(next.credits_pending)?,
            credits_posted: self.credits_posted.checked_add(next.credits_posted)?,
            check_limits: self.check_limits || next.check_limits,
            must_be_open: self.must_be_open || next.must_be_open,
        })
    }

    /// `account`'s balances with this change taken back (a commit that failed). `None` when
    /// they would leave their range, which only a change never applied could cause.
    pub fn undo(&self, account: &Account) -> Option<Account> {
        let back = |sum: u128, change: i64| u128::try_from(sum as i128 - i128::from(change)).ok();
        let mut balances = account.balances;
        balances.debits_pending = back(balances.debits_pending, self.debits_pending)?;
        balances.debits_posted = back(balances.debits_posted, self.debits_posted)?;
        balances.credits_pending = back(balances.credits_pending, self.credits_pending)?;
        balances.credits_posted = back(balances.credits_posted, self.credits_posted)?;
        Some(Account { balances, ..account.clone() })
    }
}
