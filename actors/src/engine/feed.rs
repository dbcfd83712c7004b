//! Live feeds and active expiry: the facade's side of `crate::feed_hub` and `crate::expiry`.

use uuid::Uuid;

use super::{Engine, EngineError};
use crate::domain::Token;
use crate::feed_hub::{Audience, FeedSpec, SubscribeError, Subscription};
use crate::metrics as m;
use crate::store::{Customer, Scope};
use crate::token_actor::TokenChange;

impl Engine {
    /// The customer behind a listen key: an API key of `scope` given without its secret, as
    /// the original's WebSockets authenticate. `None` for an unknown key or another scope.
    pub async fn listen_key_customer(&self, apikey: &str, scope: Scope) -> Result<Option<Customer>, EngineError> {
        let Some(access) = self.shared.store.find_access(&apikey.to_ascii_lowercase()).await? else {
            return Ok(None);
        };
        if access.scope != scope {
            return Ok(None);
        }
        Ok(self.shared.store.load_customer(access.customer_id).await?)
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
        self.feeds.subscribe(feed, audience, since).map_err(|error| match error {
            SubscribeError::NotReady => EngineError::Unavailable,
            SubscribeError::Full => {
                m::record_overload("feed");
                EngineError::Overloaded
            }
        })
    }

    /// Expire a token whose `expires` has passed (`NotOpen` when it is not OPEN and due).
    pub async fn expire_token(&self, token: Uuid) -> Result<Token, EngineError> {
        self.ask_token(token, TokenChange::Expire).await
    }
}

#[async_trait::async_trait]
impl crate::expiry::Housekeeping for Engine {
    fn store(&self) -> &std::sync::Arc<dyn crate::store::Store> {
        Engine::store(self)
    }

    async fn expire(&self, token: Uuid) -> Result<(), EngineError> {
        self.expire_token(token).await.map(|_| ())
    }

    async fn forget_idempotency_keys(&self) -> Result<u64, EngineError> {
        Engine::forget_idempotency_keys(self).await
    }
}
