//! Live feeds: the facade's side of `crate::feed_hub`, one hub per sequenced source.

use super::EngineError;
use crate::feed_hub::{
    Audience, FeedHub, FeedSource, FeedSpec, LedgerEntries, SubscribeError, Subscription, TokenEvents,
};
use crate::metrics as m;

#[derive(Clone)]
pub struct FeedService {
    tokens: FeedHub<TokenEvents>,
    ledger: FeedHub<LedgerEntries>,
}

impl FeedService {
    pub(super) fn new(tokens: FeedHub<TokenEvents>, ledger: FeedHub<LedgerEntries>) -> Self {
        Self { tokens, ledger }
    }

    /// Subscribe to a live feed of token events: the audience's committed events that the
    /// frontend's `feed` lets through. With `since`, the audience's stored events after that
    /// sequence number come first. Dropping the subscription unsubscribes.
    pub fn subscribe(
        &self,
        feed: FeedSpec<TokenEvents>,
        audience: Audience,
        since: Option<i64>,
    ) -> Result<Subscription<TokenEvents>, EngineError> {
        subscribe(&self.tokens, feed, audience, since)
    }

    /// The same for the ledger's journal lines.
    pub fn subscribe_ledger(
        &self,
        feed: FeedSpec<LedgerEntries>,
        audience: Audience,
        since: Option<i64>,
    ) -> Result<Subscription<LedgerEntries>, EngineError> {
        subscribe(&self.ledger, feed, audience, since)
    }

    /// Subscribers of every feed on this node.
    pub fn subscribers(&self) -> usize {
        self.tokens.subscribers() + self.ledger.subscribers()
    }
}

fn subscribe<S: FeedSource>(
    hub: &FeedHub<S>,
    feed: FeedSpec<S>,
    audience: Audience,
    since: Option<i64>,
) -> Result<Subscription<S>, EngineError> {
    hub.subscribe(feed, audience, since).map_err(|error| match error {
        SubscribeError::NotReady => EngineError::Unavailable,
        SubscribeError::Full => {
            m::record_overload("feed");
            EngineError::Overloaded
        }
    })
}
