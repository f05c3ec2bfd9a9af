//! Two answers to one read compared, as `nestgate migrate` verification compares records
//! ([`crate::migrate::verify::differing_fields`]): ids read through the id map, what the target
//! assigns itself left out, amounts as decimals, fields the target cannot keep left out.
//!
//! A list page is compared as the set of records it holds, plus the total: each record of the
//! served page with its copy, found through the id map on the target's page of the same query or,
//! when the target pages differently, read alone. A served record the map does not know, and a
//! target record the map does not know, are `(missing)`: created on one side since the last
//! copy (a catch-up run is due). A served record changed since it was copied is `(changed since
//! the last copy)`, for the same reason.

use super::{Failure, Reach};
use crate::migrate::copy::{SETTLING as SETTLING_MARK, digest};
use crate::migrate::side::Stop;
use crate::migrate::verify::differing_fields;
use nestgate_contract::{Op, Record, Reply};
use std::collections::HashMap;

/// The path of a record found on one side only.
pub const MISSING: &str = "(missing)";
/// The path of a list's total when the two differ.
const TOTAL: &str = "(total)";
/// The path of a record changed on the source since it was copied.
const CHANGED: &str = "(changed since the last copy)";

/// Records that differ, by the id the integration knows, each with its field paths.
pub type Differences = Vec<(String, Vec<String>)>;

pub(crate) async fn answers(
    served: &Reply,
    shadow: &Reply,
    reach: &Reach<'_>,
) -> Result<Differences, Stop> {
    match (served, shadow) {
        (Reply::Record(ours), Reply::Record(there)) => {
            let copied = reach.map.get(ours.resource(), ours.id()).await?;
            let fields = record(ours, there, copied.map(|e| e.digest), reach).await?;
            Ok(match fields.is_empty() {
                true => Vec::new(),
                false => vec![(ours.id().to_string(), fields)],
            })
        }
        (Reply::Page(a), Reply::Page(b)) => {
            let mut differences = Vec::new();
            if a.total != b.total {
                differences.push(("(page)".to_string(), vec![TOTAL.to_string()]));
            }
            // The target's records by the id the integration knows them by; one the map does
            // not know was created on the target alone.
            let mut theirs: HashMap<String, &Record> = HashMap::new();
            for record in &b.records {
                match reach.map.source_of(record.resource(), record.id()).await? {
                    Some(source_id) => {
                        theirs.insert(source_id, record);
                    }
                    None => differences.push((
                        format!("(target) {}", record.id()),
                        vec![MISSING.to_string()],
                    )),
                }
            }
            let Some(resource) = a.records.first().map(Record::resource) else {
                return Ok(differences);
            };
            let ids: Vec<&str> = a.records.iter().map(Record::id).collect();
            let mut copied = reach.map.get_many(resource, &ids).await?;
            for ours in &a.records {
                let entry = copied.remove(ours.id());
                let Some(target_id) = entry.as_ref().and_then(|e| e.target_id.clone()) else {
                    // Created since the last copy.
                    differences.push((ours.id().to_string(), vec![MISSING.to_string()]));
                    continue;
                };
                let digest = entry.map(|e| e.digest);
                let fields = match theirs.remove(ours.id()) {
                    Some(there) => record(ours, there, digest, reach).await?,
                    // On another page of the target's: read alone.
                    None => match reach
                        .call(Op::Get {
                            resource,
                            id: target_id,
                        })
                        .await
                    {
                        Ok(Reply::Record(there)) => record(ours, &there, digest, reach).await?,
                        Err(Failure::Held) => continue,
                        _ => vec![MISSING.to_string()],
                    },
                };
                if !fields.is_empty() {
                    differences.push((ours.id().to_string(), fields));
                }
            }
            // What is left of the target's page stands for records on other pages of the
            // served list: paged differently, not missing.
            Ok(differences)
        }
        _ => Ok(vec![("(answer)".to_string(), vec!["(kind)".to_string()])]),
    }
}

/// The field paths where the target's record differs; `(changed since the last copy)` when the
/// source's record is not the one copied (a catch-up run is due), whatever the fields say.
async fn record(
    source: &Record,
    target: &Record,
    copied_digest: Option<String>,
    reach: &Reach<'_>,
) -> Result<Vec<String>, Stop> {
    let now = digest(source);
    if copied_digest.is_some_and(|d| d.trim_end_matches(SETTLING_MARK) != now) {
        return Ok(vec![CHANGED.to_string()]);
    }
    let resource = source.resource();
    let value = serde_json::to_value(source).unwrap_or_default();
    let unkept: Vec<String> = reach
        .binding
        .backend
        .capabilities()
        .refuse_unsupported_fields(resource, &value)
        .into_iter()
        .map(|p| p.field)
        .collect();
    differing_fields(source, target, &reach.binding.currency, &unkept, reach.map).await
}
