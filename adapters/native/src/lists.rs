//! Lists: the store filters and pages them (`store::list`).

use crate::NativeAdapter;
use crate::error::parse_error;
use crate::mapping::record;
use crate::store;
use nestgate_contract::{AdapterError, ListQuery, Page, Reply, Resource};

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
        let records = bodies
            .iter()
            .map(|b| record(resource, b))
            .collect::<Result<_, _>>()?;
        Ok(Reply::Page(Page { records, total }))
    }
}
