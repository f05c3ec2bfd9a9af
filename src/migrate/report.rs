//! What a run found and did: per-resource counts, money totals per currency on both sides, and
//! every record that is not identical, with the reason. Written as JSON (`--report`, `--json`)
//! or as a table whose marks follow rclone's `check` (`=` `*` `+` `-` `!`).

use nestgate_contract::Resource;
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Default, Clone, Serialize)]
pub struct Counts {
    /// Records of the resource on each side.
    pub source: u64,
    pub target: u64,
    /// Created or updated on the target by this run (in a dry run: would be).
    pub copied: u64,
    /// Already on the target, unchanged on the source since the last run.
    pub unchanged: u64,
    pub failed: u64,
    pub differs: u64,
    pub missing: u64,
    pub extra: u64,
    pub not_migratable: u64,
}

/// One record that is not identical on both sides.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub resource: &'static str,
    pub source_id: Option<String>,
    pub target_id: Option<String>,
    /// `differs`, `missing`, `extra`, `failed`, `not_migratable` or `renumbered`.
    pub kind: &'static str,
    pub fields: Vec<String>,
    pub reason: String,
}

impl Difference {
    /// A source record (or some of its fields, when `fields` names them) the target cannot hold.
    pub fn not_migratable(
        record: &nestgate_contract::Record,
        fields: Vec<String>,
        reason: impl Into<String>,
    ) -> Difference {
        Difference {
            resource: record.resource().as_str(),
            source_id: Some(record.id().to_string()),
            target_id: None,
            kind: "not_migratable",
            fields,
            reason: reason.into(),
        }
    }
}

/// A money total on both sides, as decimal strings.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Sides {
    pub source: Decimal,
    pub target: Decimal,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Money {
    pub invoices_total: Sides,
    pub invoices_balance: Sides,
    pub payments_amount: Sides,
    pub expenses_amount: Sides,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    pub org: String,
    pub from: String,
    pub to: String,
    /// `dry-run`, `copy` or `verify`.
    pub mode: &'static str,
    pub ok: bool,
    pub resources: BTreeMap<&'static str, Counts>,
    pub money: BTreeMap<String, Money>,
    pub differences: Vec<Difference>,
    /// Why the run stopped early, when it did (exit 3: rerun to resume).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
    /// What a cutover did (`--cutover` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cutover: Option<crate::cutover::command::Cutover>,
    /// The differences of each source record, by resource and id (so a record's are found
    /// without reading them all).
    #[serde(skip)]
    by_record: std::collections::HashMap<(&'static str, String), Vec<usize>>,
}

impl Report {
    pub fn new(org: &str, from: &str, to: &str, mode: &'static str) -> Report {
        Report {
            org: org.into(),
            from: from.into(),
            to: to.into(),
            mode,
            resources: Resource::ALL
                .iter()
                .map(|r| (r.as_str(), Counts::default()))
                .collect(),
            ..Report::default()
        }
    }

    pub fn counts(&mut self, resource: Resource) -> &mut Counts {
        self.resources.entry(resource.as_str()).or_default()
    }

    pub fn money(&mut self, currency: &str) -> &mut Money {
        self.money.entry(currency.to_string()).or_default()
    }

    /// The differences noted so far for one source record.
    pub fn of_record(
        &self,
        resource: Resource,
        source_id: &str,
    ) -> impl Iterator<Item = &Difference> {
        self.by_record
            .get(&(resource.as_str(), source_id.to_string()))
            .into_iter()
            .flatten()
            .map(|&i| &self.differences[i])
    }

    /// Notes a record that is not identical, and counts it.
    pub fn differ(&mut self, difference: Difference) {
        if let Some(source_id) = &difference.source_id {
            self.by_record
                .entry((difference.resource, source_id.clone()))
                .or_default()
                .push(self.differences.len());
        }
        let counts = self.counts(resource_named(difference.resource));
        match difference.kind {
            "differs" => counts.differs += 1,
            "missing" => counts.missing += 1,
            "extra" => counts.extra += 1,
            "failed" => counts.failed += 1,
            "not_migratable" => counts.not_migratable += 1,
            _ => {}
        }
        self.differences.push(difference);
    }

    /// Settles `ok`: nothing differs, failed, is missing or extra, or cannot be carried, and
    /// the money matches to the last digit.
    pub fn finish(&mut self) {
        let records_ok = self.differences.iter().all(|d| d.kind == "renumbered");
        let money_ok = self.mode == "dry-run"
            || self.money.values().all(|m| {
                m.invoices_total.source == m.invoices_total.target
                    && m.invoices_balance.source == m.invoices_balance.target
                    && m.payments_amount.source == m.payments_amount.target
                    && m.expenses_amount.source == m.expenses_amount.target
            });
        self.ok = records_ok && money_ok && self.interrupted.is_none();
    }

    /// The process exit code: 0 verified equal, 1 differences, 3 interrupted.
    pub fn exit_code(&self) -> u8 {
        match (&self.interrupted, self.ok) {
            (Some(_), _) => 3,
            (None, true) => 0,
            (None, false) => 1,
        }
    }

    /// The table printed on a terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} {}: {} → {}",
            self.mode, self.org, self.from, self.to
        );
        let _ = writeln!(
            out,
            "{:<9} {:>7} {:>7} {:>7} {:>9} {:>6} {:>7} {:>7} {:>6} {:>14}",
            "resource",
            "source",
            "target",
            "copied",
            "unchanged",
            "failed",
            "differs",
            "missing",
            "extra",
            "not_migratable"
        );
        for resource in Resource::ALL {
            let c = &self.resources[resource.as_str()];
            let _ = writeln!(
                out,
                "{:<9} {:>7} {:>7} {:>7} {:>9} {:>6} {:>7} {:>7} {:>6} {:>14}",
                resource.as_str(),
                c.source,
                c.target,
                c.copied,
                c.unchanged,
                c.failed,
                c.differs,
                c.missing,
                c.extra,
                c.not_migratable
            );
        }
        for (currency, m) in &self.money {
            for (what, sides) in [
                ("invoices total", &m.invoices_total),
                ("invoices balance", &m.invoices_balance),
                ("payments", &m.payments_amount),
                ("expenses", &m.expenses_amount),
            ] {
                if self.mode == "dry-run" {
                    // A dry run never reads the target: only what would be carried.
                    let _ = writeln!(out, "  {currency} {what}: {} on the source", sides.source);
                    continue;
                }
                let mark = if sides.source == sides.target {
                    '='
                } else {
                    '*'
                };
                let _ = writeln!(
                    out,
                    "{mark} {currency} {what}: {} on the source, {} on the target",
                    sides.source, sides.target
                );
            }
        }
        for d in &self.differences {
            let mark = match d.kind {
                "differs" => '*',
                "missing" => '+',
                "extra" => '-',
                _ => '!',
            };
            let ids = match (&d.source_id, &d.target_id) {
                (Some(s), Some(t)) => format!("{s} → {t}"),
                (Some(s), None) => s.clone(),
                (None, Some(t)) => format!("(target) {t}"),
                (None, None) => String::new(),
            };
            let fields = if d.fields.is_empty() {
                String::new()
            } else {
                format!(" [{}]", d.fields.join(", "))
            };
            let _ = writeln!(
                out,
                "{mark} {} {ids} {}{fields}: {}",
                d.resource, d.kind, d.reason
            );
        }
        if let Some(cutover) = &self.cutover {
            let _ = match (&cutover.reason, cutover.switched) {
                (_, true) => writeln!(
                    out,
                    "switched to {}: writes were frozen for {} ms",
                    self.to, cutover.frozen_ms
                ),
                (reason, false) => writeln!(
                    out,
                    "nothing switched ({}); writes were frozen for {} ms and resumed on {}",
                    reason.as_deref().unwrap_or("see above"),
                    cutover.frozen_ms,
                    self.from
                ),
            };
        }
        let verdict = match (&self.interrupted, self.ok) {
            (Some(why), _) => format!("interrupted: {why}; rerun to resume"),
            (None, true) if self.mode == "dry-run" => "everything can be carried".to_string(),
            (None, true) => "verified equal".to_string(),
            (None, false) => format!("{} differences", self.differences.len()),
        };
        let _ = writeln!(out, "{verdict}");
        out
    }
}

pub fn resource_named(name: &str) -> Resource {
    Resource::parse(name).unwrap_or(Resource::Clients)
}
