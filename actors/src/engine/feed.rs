//! Live feeds: the facade's side of `crate::feed_hub`.

use super::EngineError;
use crate::feed_hub::{Audience, FeedHub, FeedSpec, SubscribeError, Subscription};
use crate::metrics as m;

#[derive(Clone)]
pub struct FeedService {
    hub: FeedHub,
}

impl FeedService {
    pub(super) fn new(hub: FeedHub) -> Self {
        Self { hub }
    }

    /// Subscribe to a live feed: the audience's committed events that the frontend's `feed`
    /// lets through. With `since`, the audience's stored events after that sequence number come
    /// first. Dropping the subscription unsubscribes.
    pub fn subscribe(
        &self,
        feed: FeedSpec,
        audience: Audience,
        since: Option<i64>,
    ) -> Result<Subscription, EngineError> {
        self.hub.subscribe(feed, audience, since).map_err(|error| match error {
            SubscribeError::NotReady => EngineError::Unavailable,
            SubscribeError::Full => {
                m::record_overload("feed");
                EngineError::Overloaded
            }
        })
    }
}
