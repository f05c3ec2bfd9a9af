//! Reads of one record by id, and of the other records a call needs: a client, the products
//! that invoice lines name.

use crate::NativeAdapter;
use crate::error::{Failure, parse_error};
use crate::mapping::parse;
use crate::store::{self, Stored};
use nestgate_contract::input::LineItemInput;
use nestgate_contract::op::Texts;
use nestgate_contract::records::{Client, LineItem, Product};
use nestgate_contract::rules::{self, ProductLookup};
use nestgate_contract::{AdapterError, Reply, Resource};

impl NativeAdapter {
    /// A record's body and version as committed: read on this thread where it can be
    /// (`reads.rs`), through sqlx otherwise. The reads before a write come here too: the write
    /// checks the version it read, so any committed state will do.
    pub(crate) async fn stored(
        &self,
        org: &str,
        resource: Resource,
        id: &str,
    ) -> Result<Option<Stored>, sqlx::Error> {
        match self
            .readers
            .as_ref()
            .and_then(|r| r.fetch(org, resource, id))
        {
            Some(stored) => Ok(stored),
            None => store::fetch(&self.pool, org, resource, id).await,
        }
    }

    /// A record as its stored text: the gateway reads it only if it needs the record.
    pub(crate) async fn get(
        &self,
        org: &str,
        resource: Resource,
        id: &str,
    ) -> Result<Reply, AdapterError> {
        match self.stored(org, resource, id).await.map_err(parse_error)? {
            Some(stored) => Ok(Reply::Texts(Texts {
                resource,
                records: vec![stored.body],
                total: None,
            })),
            None => Err(AdapterError::not_found(resource, id)),
        }
    }

    pub(crate) async fn get_as<T: serde::de::DeserializeOwned>(
        &self,
        org: &str,
        resource: Resource,
        id: &str,
    ) -> Result<Option<(T, i64)>, Failure> {
        match self.stored(org, resource, id).await? {
            Some(stored) => Ok(Some((parse(&stored.body)?, stored.version))),
            None => Ok(None),
        }
    }

    pub(crate) async fn find_client(&self, org: &str, id: &str) -> Result<Option<Client>, Failure> {
        Ok(self
            .get_as::<Client>(org, Resource::Clients, id)
            .await?
            .map(|(c, _)| c))
    }

    /// Resolves line items against the organization's products.
    pub(crate) async fn resolve_lines(
        &self,
        org: &str,
        lines: Vec<LineItemInput>,
    ) -> Result<Vec<LineItem>, Failure> {
        let mut products = StoredProducts { adapter: self, org };
        rules::resolve_lines(lines, &mut products).await
    }
}

/// The organization's products as invoice lines name them, read from the store line by line.
struct StoredProducts<'a> {
    adapter: &'a NativeAdapter,
    org: &'a str,
}

impl ProductLookup for StoredProducts<'_> {
    type Error = Failure;

    async fn by_id(&mut self, id: &str) -> Result<Option<Product>, Failure> {
        Ok(self
            .adapter
            .get_as::<Product>(self.org, Resource::Products, id)
            .await?
            .map(|(p, _)| p))
    }

    async fn by_key(&mut self, key: &str) -> Result<Option<Product>, Failure> {
        match store::fetch_by_key(&self.adapter.pool, self.org, Resource::Products, key).await? {
            Some(body) => Ok(Some(parse::<Product>(&body)?)),
            None => Ok(None),
        }
    }
}
