//! Lists: the store filters and pages them (`store::list`); the page is answered as the stored
//! texts.

use crate::NativeAdapter;
use crate::error::parse_error;
use crate::store;
use nestgate_contract::op::Texts;
use nestgate_contract::{AdapterError, ListQuery, Reply, Resource};

impl NativeAdapter {
    pub(crate) async fn list(
        &self,
        org: &str,
        resource: Resource,
        query: &ListQuery,
    ) -> Result<Reply, AdapterError> {
        let direct = self
            .readers
            .as_ref()
            .and_then(|r| r.list(org, resource, query));
        let (bodies, total) = match direct {
            Some(page) => page,
            None => store::list(&self.pool, org, resource, query)
                .await
                .map_err(parse_error)?,
        };
        // As stored: the gateway reads the texts into records only if it needs them.
        Ok(Reply::Texts(Texts {
            resource,
            records: bodies,
            total: Some(total),
        }))
    }
}
