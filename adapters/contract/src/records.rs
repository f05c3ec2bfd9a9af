//! The five InvoiceNests records, exactly as a client sees them whichever backend answered.
//!
//! Every record has `id` (opaque string), `created_at` and `updated_at` (RFC 3339, UTC) and
//! `archived`. Optional fields are always present, as `null` when unset, so that the shape of a
//! response never tells which backend produced it.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Timestamps are written with millisecond precision and a `Z` suffix.
pub mod timestamp {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct Address {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
}

impl Address {
    pub fn is_empty(&self) -> bool {
        *self == Address::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Client {
    #[schema(read_only)]
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<Address>,
    pub tax_id: Option<String>,
    pub currency: Option<String>,
    pub notes: Option<String>,
    #[schema(read_only)]
    #[serde(with = "timestamp")]
    pub created_at: DateTime<Utc>,
    #[schema(read_only)]
    #[serde(with = "timestamp")]
    pub updated_at: DateTime<Utc>,
    #[schema(read_only)]
    pub archived: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Product {
    #[schema(read_only)]
    pub id: String,
    /// Unique per organization.
    pub key: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub unit_price: Option<Decimal>,
    /// Percent, e.g. `"8.875"`.
    pub tax_rate: Option<Decimal>,
    pub currency: Option<String>,
    #[schema(read_only)]
    #[serde(with = "timestamp")]
    pub created_at: DateTime<Utc>,
    #[schema(read_only)]
    #[serde(with = "timestamp")]
    pub updated_at: DateTime<Utc>,
    #[schema(read_only)]
    pub archived: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    #[default]
    Draft,
    Sent,
    Viewed,
    Partial,
    Paid,
    Void,
}

impl InvoiceStatus {
    pub const ALL: [InvoiceStatus; 6] = [
        InvoiceStatus::Draft,
        InvoiceStatus::Sent,
        InvoiceStatus::Viewed,
        InvoiceStatus::Partial,
        InvoiceStatus::Paid,
        InvoiceStatus::Void,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Draft => "draft",
            InvoiceStatus::Sent => "sent",
            InvoiceStatus::Viewed => "viewed",
            InvoiceStatus::Partial => "partial",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Void => "void",
        }
    }

    pub fn parse(text: &str) -> Option<InvoiceStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// `partial` and `paid` follow from payments; a client cannot set them.
    pub fn is_settable(self) -> bool {
        !matches!(self, InvoiceStatus::Partial | InvoiceStatus::Paid)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LineItem {
    pub product_id: Option<String>,
    pub product_key: Option<String>,
    pub description: Option<String>,
    pub quantity: Decimal,
    pub unit_price: Decimal,
    /// Percent.
    pub tax_rate: Decimal,
    /// `quantity × unit_price`, rounded to the currency; computed by the gateway.
    #[schema(read_only)]
    pub amount: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Invoice {
    #[schema(read_only)]
    pub id: String,
    pub number: String,
    pub client_id: String,
    pub status: InvoiceStatus,
    pub currency: String,
    pub issue_date: Option<NaiveDate>,
    pub due_date: Option<NaiveDate>,
    pub line_items: Vec<LineItem>,
    #[schema(read_only)]
    pub subtotal: Decimal,
    #[schema(read_only)]
    pub tax_total: Decimal,
    #[schema(read_only)]
    pub total: Decimal,
    #[schema(read_only)]
    pub amount_paid: Decimal,
    #[schema(read_only)]
    pub balance: Decimal,
    pub notes: Option<String>,
    #[schema(read_only)]
    #[serde(with = "timestamp")]
    pub created_at: DateTime<Utc>,
    #[schema(read_only)]
    #[serde(with = "timestamp")]
    pub updated_at: DateTime<Utc>,
    #[schema(read_only)]
    pub archived: bool,
}

impl Invoice {
    /// A new draft with no id, number, dates or lines yet: what every backend fills from a
    /// create body.
    pub fn draft(client_id: String, currency: String, now: DateTime<Utc>) -> Invoice {
        Invoice {
            id: String::new(),
            number: String::new(),
            client_id,
            status: InvoiceStatus::Draft,
            currency,
            issue_date: None,
            due_date: None,
            line_items: Vec::new(),
            subtotal: Decimal::ZERO,
            tax_total: Decimal::ZERO,
            total: Decimal::ZERO,
            amount_paid: Decimal::ZERO,
            balance: Decimal::ZERO,
            notes: None,
            created_at: now,
            updated_at: now,
            archived: false,
        }
    }

    /// Recomputes every line amount and the invoice totals from quantities, prices and rates.
    /// The one place the gateway's arithmetic lives: each line and each line's tax are rounded
    /// half-up to the currency, and the totals are sums of rounded values, so they always add up.
    pub fn recompute(&mut self) {
        let currency = self.currency.clone();
        let mut subtotal = crate::money::round_amount(Decimal::ZERO, &currency);
        let mut tax_total = subtotal;
        for item in &mut self.line_items {
            item.amount = crate::money::round_amount(item.quantity * item.unit_price, &currency);
            let tax = crate::money::round_amount(
                item.amount * item.tax_rate / Decimal::ONE_HUNDRED,
                &currency,
            );
            subtotal += item.amount;
            tax_total += tax;
        }
        self.subtotal = subtotal;
        self.tax_total = tax_total;
        self.total = crate::money::round_amount(subtotal + tax_total, &currency);
        self.amount_paid = crate::money::round_amount(self.amount_paid, &currency);
        self.balance = crate::money::round_amount(self.total - self.amount_paid, &currency);
        if self.status != InvoiceStatus::Void {
            if self.amount_paid > Decimal::ZERO && self.balance <= Decimal::ZERO {
                self.status = InvoiceStatus::Paid;
            } else if self.amount_paid > Decimal::ZERO {
                self.status = InvoiceStatus::Partial;
            } else if matches!(self.status, InvoiceStatus::Partial | InvoiceStatus::Paid) {
                // Every payment was removed: back to "sent", the state it had to be in to be paid.
                self.status = InvoiceStatus::Sent;
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Payment {
    #[schema(read_only)]
    pub id: String,
    pub invoice_id: String,
    /// Taken from the invoice.
    #[schema(read_only)]
    pub client_id: String,
    pub amount: Decimal,
    pub currency: String,
    pub date: NaiveDate,
    pub method: Option<String>,
    pub reference: Option<String>,
    #[schema(read_only)]
    #[serde(with = "timestamp")]
    pub created_at: DateTime<Utc>,
    #[schema(read_only)]
    #[serde(with = "timestamp")]
    pub updated_at: DateTime<Utc>,
    #[schema(read_only)]
    pub archived: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Expense {
    #[schema(read_only)]
    pub id: String,
    pub amount: Decimal,
    pub currency: String,
    pub date: Option<NaiveDate>,
    pub vendor: Option<String>,
    pub category: Option<String>,
    pub client_id: Option<String>,
    pub notes: Option<String>,
    #[schema(read_only)]
    #[serde(with = "timestamp")]
    pub created_at: DateTime<Utc>,
    #[schema(read_only)]
    #[serde(with = "timestamp")]
    pub updated_at: DateTime<Utc>,
    #[schema(read_only)]
    pub archived: bool,
}

/// Any one record; serialized as the bare record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Record {
    Client(Client),
    Product(Product),
    Invoice(Invoice),
    Payment(Payment),
    Expense(Expense),
}

impl Record {
    /// Whether the record is archived.
    pub fn archived(&self) -> bool {
        match self {
            Record::Client(r) => r.archived,
            Record::Product(r) => r.archived,
            Record::Invoice(r) => r.archived,
            Record::Payment(r) => r.archived,
            Record::Expense(r) => r.archived,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Record::Client(r) => &r.id,
            Record::Product(r) => &r.id,
            Record::Invoice(r) => &r.id,
            Record::Payment(r) => &r.id,
            Record::Expense(r) => &r.id,
        }
    }

    /// Reads the JSON text of a record of `resource` (as [`Record`] serializes it).
    pub fn from_json(resource: crate::Resource, json: &str) -> serde_json::Result<Record> {
        use crate::Resource;
        Ok(match resource {
            Resource::Clients => Record::Client(serde_json::from_str(json)?),
            Resource::Products => Record::Product(serde_json::from_str(json)?),
            Resource::Invoices => Record::Invoice(serde_json::from_str(json)?),
            Resource::Payments => Record::Payment(serde_json::from_str(json)?),
            Resource::Expenses => Record::Expense(serde_json::from_str(json)?),
        })
    }

    pub fn resource(&self) -> crate::Resource {
        use crate::Resource;
        match self {
            Record::Client(_) => Resource::Clients,
            Record::Product(_) => Resource::Products,
            Record::Invoice(_) => Resource::Invoices,
            Record::Payment(_) => Resource::Payments,
            Record::Expense(_) => Resource::Expenses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::dec;

    fn invoice(items: Vec<(&str, &str, &str)>) -> Invoice {
        let now = Utc::now();
        Invoice {
            id: "inv_1".into(),
            number: "INV-1".into(),
            client_id: "cli_1".into(),
            status: InvoiceStatus::Sent,
            currency: "USD".into(),
            issue_date: None,
            due_date: None,
            line_items: items
                .into_iter()
                .map(|(q, p, t)| LineItem {
                    product_id: None,
                    product_key: None,
                    description: None,
                    quantity: dec(q),
                    unit_price: dec(p),
                    tax_rate: dec(t),
                    amount: Decimal::ZERO,
                })
                .collect(),
            subtotal: Decimal::ZERO,
            tax_total: Decimal::ZERO,
            total: Decimal::ZERO,
            amount_paid: Decimal::ZERO,
            balance: Decimal::ZERO,
            notes: None,
            created_at: now,
            updated_at: now,
            archived: false,
        }
    }

    #[test]
    fn totals_are_sums_of_rounded_lines() {
        let mut inv = invoice(vec![("3", "0.335", "8.875"), ("0.5", "1250", "0")]);
        inv.recompute();
        assert_eq!(inv.line_items[0].amount.to_string(), "1.01"); // 1.005 half-up
        assert_eq!(inv.line_items[1].amount.to_string(), "625.00");
        assert_eq!(inv.subtotal.to_string(), "626.01");
        assert_eq!(inv.tax_total.to_string(), "0.09"); // 1.01 × 8.875% = 0.0896…
        assert_eq!(inv.total.to_string(), "626.10");
        assert_eq!(inv.balance.to_string(), "626.10");
    }

    #[test]
    fn payments_move_status_and_back() {
        let mut inv = invoice(vec![("1", "100", "0")]);
        inv.amount_paid = dec("40");
        inv.recompute();
        assert_eq!(inv.status, InvoiceStatus::Partial);
        assert_eq!(inv.balance.to_string(), "60.00");
        inv.amount_paid = dec("100");
        inv.recompute();
        assert_eq!(inv.status, InvoiceStatus::Paid);
        inv.amount_paid = Decimal::ZERO;
        inv.recompute();
        assert_eq!(inv.status, InvoiceStatus::Sent);
    }
}
