//! Two answers to one read compared, as `nestgate migrate` verification compares records
//! ([`crate::migrate::verify::differing_fields`]): ids read through the id map, what the target
//! assigns itself left out, amounts as decimals, fields the target cannot keep left out.
//!
//! A list page is compared as the set of records it holds: each record of the served page with
//! its counterpart on the target's page (found through the id map, whatever its place), plus the
//! total. A record on one page only is `(missing)`: created since the last copy (a catch-up run
//! is due), or paged differently by the target.

use crate::backends::Binding;
use crate::migrate::idmap::IdMap;
use crate::migrate::side::Stop;
use crate::migrate::verify::differing_fields;
use nestgate_contract::{Record, Reply};
use std::collections::HashMap;

/// The path of a record found on one side only.
pub const MISSING: &str = "(missing)";
/// The path of a list's total when the two differ.
const TOTAL: &str = "(total)";

/// Records that differ, by the id the integration knows, each with its field paths.
pub type Differences = Vec<(String, Vec<String>)>;

pub async fn answers(
    served: &Reply,
    shadow: &Reply,
    target: &Binding,
    map: &IdMap,
) -> Result<Differences, Stop> {
    match (served, shadow) {
        (Reply::Record(a), Reply::Record(b)) => {
            let fields = record(a, b, target, map).await?;
            Ok(match fields.is_empty() {
                true => Vec::new(),
                false => vec![(a.id().to_string(), fields)],
            })
        }
        (Reply::Page(a), Reply::Page(b)) => {
            let mut differences = Vec::new();
            if a.total != b.total {
                differences.push(("(page)".to_string(), vec![TOTAL.to_string()]));
            }
            // The target's records by the id the integration knows them by.
            let mut theirs: HashMap<String, &Record> = HashMap::new();
            for record in &b.records {
                let resource = record.resource();
                let known = map.source_of(resource, record.id()).await?;
                match known {
                    Some(source_id) => theirs.insert(source_id, record),
                    None => {
                        differences.push((record.id().to_string(), vec![MISSING.to_string()]));
                        continue;
                    }
                };
            }
            for ours in &a.records {
                match theirs.remove(ours.id()) {
                    Some(there) => {
                        let fields = record(ours, there, target, map).await?;
                        if !fields.is_empty() {
                            differences.push((ours.id().to_string(), fields));
                        }
                    }
                    None => differences.push((ours.id().to_string(), vec![MISSING.to_string()])),
                }
            }
            for (source_id, _) in theirs {
                differences.push((source_id, vec![MISSING.to_string()]));
            }
            Ok(differences)
        }
        _ => Ok(vec![("(answer)".to_string(), vec!["(kind)".to_string()])]),
    }
}

async fn record(
    source: &Record,
    target: &Record,
    binding: &Binding,
    map: &IdMap,
) -> Result<Vec<String>, Stop> {
    let resource = source.resource();
    let value = serde_json::to_value(source).unwrap_or_default();
    let unkept: Vec<String> = binding
        .backend
        .capabilities()
        .refuse_unsupported_fields(resource, &value)
        .into_iter()
        .map(|p| p.field)
        .collect();
    differing_fields(source, target, &binding.currency, &unkept, map).await
}
