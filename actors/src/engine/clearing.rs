//! Clearing: settlement rows written with COMPLETED cash-outs and cash-ins, and their queries.
//!
//! The rows themselves are written by the token actor in the confirm's commit (the domain
//! decides the parties, the store snapshots the default accounts). Here are the Clearing
//! API's reads and its scoping rule: a customer sees the clearings it is debitor or creditor
//! of; an admin (roles text containing `admin`) sees those of the customer it names, and
//! nothing when it names none.

use std::sync::Arc;

use uuid::Uuid;

use super::EngineError;
use crate::domain::{CustomerId, Millis, TokenType};
use crate::store::{ClearingQuery, ClearingRow, ClearingSum, Customer, Store, LIST_LIMIT_MAX};

/// Admin checks of the API-key groups match a substring of the roles text, as the original.
pub fn is_admin(customer: &Customer) -> bool {
    customer.roles.contains("admin")
}

/// A Clearing API selection, as the frontend read it from the query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClearingFilter {
    /// Clearing date, inclusive lower bound (epoch ms).
    pub from: Option<Millis>,
    /// Clearing date, exclusive upper bound (epoch ms).
    pub to: Option<Millis>,
    pub token_type: Option<TokenType>,
    /// The `customer_id` an admin names; ignored for everyone else.
    pub customer_id: Option<CustomerId>,
}

/// Whose clearings `viewer` sees: its own, or for an admin the customer it names (`None`:
/// an admin who names nobody sees nothing).
pub fn clearing_party(viewer: &Customer, named: Option<CustomerId>) -> Option<CustomerId> {
    if is_admin(viewer) {
        named
    } else {
        Some(viewer.id)
    }
}

fn query(viewer: &Customer, filter: &ClearingFilter, token: Option<Uuid>) -> Option<ClearingQuery> {
    Some(ClearingQuery {
        customer: Some(clearing_party(viewer, filter.customer_id)?),
        token,
        from: filter.from,
        to: filter.to,
        token_type: filter.token_type,
        limit: LIST_LIMIT_MAX,
    })
}

/// Clearing data for settlement: what each viewer may see of the clearing rows.
#[derive(Clone)]
pub struct ClearingService {
    store: Arc<dyn Store>,
}

impl ClearingService {
    pub(super) fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// `GET /clearing/v1/tokens`: the clearing rows `viewer` may see that match `filter`.
    pub async fn rows(&self, viewer: &Customer, filter: &ClearingFilter) -> Result<Vec<ClearingRow>, EngineError> {
        match query(viewer, filter, None) {
            Some(query) => Ok(self.store.clearing_rows(&query).await?),
            None => Ok(Vec::new()),
        }
    }

    /// `GET /clearing/v1/tokens/:uuid`: the clearing row of one token, within `viewer`'s scope.
    pub async fn row(
        &self,
        viewer: &Customer,
        token: Uuid,
        customer_id: Option<CustomerId>,
    ) -> Result<Option<ClearingRow>, EngineError> {
        let filter = ClearingFilter { customer_id, ..ClearingFilter::default() };
        match query(viewer, &filter, Some(token)) {
            Some(query) => Ok(self.store.clearing_rows(&query).await?.into_iter().next()),
            None => Ok(None),
        }
    }

    /// `GET /clearing/v1/sums`: counts and amounts by type, currency, debitor and creditor.
    pub async fn sums(&self, viewer: &Customer, filter: &ClearingFilter) -> Result<Vec<ClearingSum>, EngineError> {
        match query(viewer, filter, None) {
            Some(query) => Ok(self.store.clearing_sums(&query).await?),
            None => Ok(Vec::new()),
        }
    }

    /// `GET /clearing/v1/customers`: every customer for an admin, else the viewer's own row.
    pub async fn customers(&self, viewer: &Customer) -> Result<Vec<Customer>, EngineError> {
        if is_admin(viewer) {
            return Ok(self.store.list_customers().await?);
        }
        let current = self.store.load_customer(viewer.id).await?;
        Ok(vec![current.unwrap_or_else(|| viewer.clone())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(id: CustomerId, roles: &str) -> Customer {
        Customer {
            id,
            created: 0,
            email: format!("c{id}@example.com"),
            display_name: None,
            roles: roles.into(),
            status: 1,
            info: None,
        }
    }

    #[test]
    fn customers_see_their_own_clearings_whatever_they_name() {
        assert_eq!(clearing_party(&customer(3, "user"), None), Some(3));
        assert_eq!(clearing_party(&customer(3, "user"), Some(9)), Some(3));
    }

    #[test]
    fn admins_see_the_customer_they_name_and_nothing_otherwise() {
        assert_eq!(clearing_party(&customer(1, "user,admin"), Some(9)), Some(9));
        assert_eq!(clearing_party(&customer(1, "user,admin"), None), None);
        // A substring match, as the original's `indexOf("admin")`.
        assert_eq!(clearing_party(&customer(1, "superadministrator"), Some(4)), Some(4));
    }

    #[test]
    fn the_query_carries_the_filter_and_a_bounded_limit() {
        let filter =
            ClearingFilter { from: Some(10), to: Some(20), token_type: Some(TokenType::Cashin), customer_id: None };
        let query = query(&customer(5, "user"), &filter, None).unwrap_or_else(|| panic!("a query"));
        assert_eq!(query.customer, Some(5));
        assert_eq!((query.from, query.to, query.token_type), (Some(10), Some(20), Some(TokenType::Cashin)));
        assert_eq!(query.limit, LIST_LIMIT_MAX);
        assert!(super::query(&customer(1, "admin"), &filter, None).is_none());
    }
}
