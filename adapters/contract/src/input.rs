//! Request bodies, validated into patches.
//!
//! A create and an update share one type per resource: a patch in which every field is absent
//! (leave as is), null (clear) or set. A create is a patch applied to a blank record, with the
//! required fields checked; an update is the same patch applied to the stored record. That keeps
//! the merge rules (API.md: "fields absent stay as they are") in one place for every backend.
//!
//! Every problem is reported with its field path, all at once, never just the first.

use crate::error::FieldError;
use crate::money::{parse_decimal, parse_plain_decimal};
use crate::records::{
    Address, Client, Expense, Invoice, InvoiceStatus, LineItem, Payment, Product,
};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

/// What a body is for: a create must carry the required fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Update,
}

/// One field of a patch.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Patch<T> {
    /// Not in the body: leave the stored value alone.
    #[default]
    Absent,
    /// `null` in the body: clear the stored value.
    Clear,
    Set(T),
}

impl<T> Patch<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Patch::Absent)
    }

    pub fn as_set(&self) -> Option<&T> {
        match self {
            Patch::Set(value) => Some(value),
            _ => None,
        }
    }

    /// Applies to an optional field.
    pub fn apply(self, target: &mut Option<T>) {
        match self {
            Patch::Absent => {}
            Patch::Clear => *target = None,
            Patch::Set(value) => *target = Some(value),
        }
    }

    /// Applies to a required field (parsing has already refused `Clear` for those).
    pub fn apply_required(self, target: &mut T) {
        if let Patch::Set(value) = self {
            *target = value;
        }
    }
}

/// Limits on free text, generous for real data and small enough to protect the store.
const SHORT_TEXT: usize = 255;
const LONG_TEXT: usize = 10_000;
const MAX_LINE_ITEMS: usize = 500;

/// Reads one JSON object, collecting every problem under its path.
struct Reader<'a> {
    obj: &'a Map<String, Value>,
    prefix: String,
    mode: Mode,
    errors: &'a mut Vec<FieldError>,
}

/// How a decimal field is bounded.
#[derive(Clone, Copy)]
struct Bounds {
    /// The value must be greater than zero (otherwise at least zero).
    positive: bool,
    max: i64,
    places: u32,
}

const MONEY: Bounds = Bounds {
    positive: false,
    max: 1_000_000_000_000,
    places: 6,
};
const POSITIVE_MONEY: Bounds = Bounds {
    positive: true,
    max: 1_000_000_000_000,
    places: 4,
};
const QUANTITY: Bounds = Bounds {
    positive: true,
    max: 1_000_000_000,
    places: 6,
};
const RATE: Bounds = Bounds {
    positive: false,
    max: 100,
    places: 4,
};

impl<'a> Reader<'a> {
    fn open(
        value: &'a Value,
        prefix: &str,
        mode: Mode,
        errors: &'a mut Vec<FieldError>,
        allowed: &[&str],
        ignored: &[&str],
    ) -> Option<Reader<'a>> {
        let Value::Object(obj) = value else {
            let field = if prefix.is_empty() { "body" } else { prefix };
            errors.push(FieldError::new(field, "must be a JSON object"));
            return None;
        };
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) && !ignored.contains(&key.as_str()) {
                errors.push(FieldError::new(join(prefix, key), "is not a known field"));
            }
        }
        Some(Reader {
            obj,
            prefix: prefix.to_string(),
            mode,
            errors,
        })
    }

    fn path(&self, key: &str) -> String {
        join(&self.prefix, key)
    }

    fn fail(&mut self, key: &str, issue: impl Into<String>) {
        let path = self.path(key);
        self.errors.push(FieldError::new(path, issue));
    }

    /// The raw value: `None` when absent, `Some(Null)` for an explicit null.
    fn raw(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key)
    }

    /// Enforces "required" for a create and "cannot be null" for an update.
    fn require<T>(&mut self, key: &str, patch: Patch<T>) -> Patch<T> {
        match (&patch, self.mode) {
            (Patch::Clear, _) => {
                self.fail(key, "is required and cannot be null");
                Patch::Absent
            }
            (Patch::Absent, Mode::Create) if !self.has_error(key) => {
                self.fail(key, "is required");
                Patch::Absent
            }
            _ => patch,
        }
    }

    /// A field that always has a value (it has a default) may be absent, never null.
    fn not_null<T>(&mut self, key: &str, patch: Patch<T>) -> Patch<T> {
        if let Patch::Clear = patch {
            self.fail(key, "cannot be null");
            return Patch::Absent;
        }
        patch
    }

    fn has_error(&self, key: &str) -> bool {
        let path = self.path(key);
        self.errors.iter().any(|e| e.field == path)
    }

    fn with<T>(&mut self, key: &str, parse: impl FnOnce(&Value) -> Result<T, String>) -> Patch<T> {
        match self.raw(key) {
            None => Patch::Absent,
            Some(Value::Null) => Patch::Clear,
            Some(value) => match parse(value) {
                Ok(parsed) => Patch::Set(parsed),
                Err(issue) => {
                    self.fail(key, issue);
                    Patch::Absent
                }
            },
        }
    }

    fn text(&mut self, key: &str, max: usize) -> Patch<String> {
        self.with(key, |v| text(v, max))
    }

    fn required_text(&mut self, key: &str, max: usize) -> Patch<String> {
        let patch = self.with(key, |v| {
            let s = text(v, max)?;
            if s.trim().is_empty() {
                Err("must not be empty".into())
            } else {
                Ok(s)
            }
        });
        self.require(key, patch)
    }

    fn id(&mut self, key: &str) -> Patch<String> {
        self.with(key, |v| match v {
            Value::String(s) if is_valid_id(s) => Ok(s.clone()),
            Value::String(_) => Err("is not a valid id".into()),
            _ => Err("must be a string id".into()),
        })
    }

    fn decimal(&mut self, key: &str, bounds: Bounds) -> Patch<Decimal> {
        self.with(key, |v| decimal(v, bounds))
    }

    fn date(&mut self, key: &str) -> Patch<NaiveDate> {
        self.with(key, |v| match v {
            Value::String(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .filter(|_| s.len() == 10)
                .ok_or_else(|| "must be a date as YYYY-MM-DD".to_string()),
            _ => Err("must be a date as YYYY-MM-DD".into()),
        })
    }

    fn currency(&mut self, key: &str) -> Patch<String> {
        self.with(key, |v| match v {
            Value::String(s) if crate::money::is_currency(s) => Ok(s.clone()),
            _ => Err("must be an ISO 4217 currency code such as \"USD\"".into()),
        })
    }

    fn email(&mut self, key: &str) -> Patch<String> {
        self.with(key, |v| match v {
            Value::String(s)
                if s.len() <= SHORT_TEXT && email_address::EmailAddress::is_valid(s) =>
            {
                Ok(s.clone())
            }
            _ => Err("must be a valid email address".into()),
        })
    }

    fn country(&mut self, key: &str) -> Patch<String> {
        self.with(key, |v| match v {
            Value::String(s) if rust_iso3166::from_alpha2(s).is_some() => Ok(s.clone()),
            _ => Err("must be an ISO 3166-1 alpha-2 country code such as \"US\"".into()),
        })
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Ids are opaque to clients, but every backend's ids are short and plain (`inv_…`, `12`, a UUID).
/// Anything else cannot name a record: quotes, NUL bytes, slashes, kilobytes of text.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn text(value: &Value, max: usize) -> Result<String, String> {
    let Value::String(s) = value else {
        return Err("must be a string".into());
    };
    if s.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err("must not contain control characters".into());
    }
    Ok(s.clone())
}

fn decimal(value: &Value, bounds: Bounds) -> Result<Decimal, String> {
    let parsed = match value {
        Value::String(s) => parse_plain_decimal(s),
        Value::Number(n) => parse_decimal(&n.to_string()),
        _ => None,
    };
    let Some(d) = parsed else {
        return Err("must be a decimal number".into());
    };
    if bounds.positive && d <= Decimal::ZERO {
        return Err("must be greater than zero".into());
    }
    if d < Decimal::ZERO {
        return Err("must not be negative".into());
    }
    if d > Decimal::from(bounds.max) {
        return Err(format!("must be at most {}", bounds.max));
    }
    let d = d.normalize();
    if d.scale() > bounds.places {
        return Err(format!(
            "must have at most {} decimal places",
            bounds.places
        ));
    }
    Ok(d)
}

/// Checks that an amount fits the currency's minor unit ("10.005" is not a USD amount).
pub fn check_amount_places(field: &str, amount: Decimal, currency: &str) -> Result<(), FieldError> {
    let places = crate::money::minor_units(currency);
    if amount.normalize().scale() > places {
        Err(FieldError::new(
            field,
            format!("must have at most {places} decimal places for {currency}"),
        ))
    } else {
        Ok(())
    }
}

/// Fields every record has, accepted in a body and ignored: a client may send back what it read.
const READ_ONLY: &[&str] = &["id", "created_at", "updated_at", "archived"];

/// Line item fields have no "clear": a missing or null value means "not given".
fn plain<T>(patch: Patch<T>) -> Option<T> {
    match patch {
        Patch::Set(value) => Some(value),
        _ => None,
    }
}

fn finish<T>(value: T, errors: Vec<FieldError>) -> Result<T, Vec<FieldError>> {
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(errors)
    }
}

// ---------------------------------------------------------------------------------------------
// Client

#[derive(Debug, Clone, PartialEq, Default)]
pub struct AddressPatch {
    pub line1: Patch<String>,
    pub line2: Patch<String>,
    pub city: Patch<String>,
    pub state: Patch<String>,
    pub postal_code: Patch<String>,
    pub country: Patch<String>,
}

impl AddressPatch {
    /// Merges into the stored address (RFC 7396 style): fields absent stay as they are.
    pub fn apply(self, target: &mut Option<Address>) {
        let mut address = target.take().unwrap_or_default();
        self.line1.apply(&mut address.line1);
        self.line2.apply(&mut address.line2);
        self.city.apply(&mut address.city);
        self.state.apply(&mut address.state);
        self.postal_code.apply(&mut address.postal_code);
        self.country.apply(&mut address.country);
        *target = (!address.is_empty()).then_some(address);
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClientPatch {
    pub name: Patch<String>,
    pub email: Patch<String>,
    pub phone: Patch<String>,
    pub address: Patch<AddressPatch>,
    pub tax_id: Patch<String>,
    pub currency: Patch<String>,
    pub notes: Patch<String>,
}

impl ClientPatch {
    pub fn parse(body: &Value, mode: Mode) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let allowed = [
            "name", "email", "phone", "address", "tax_id", "currency", "notes",
        ];
        let Some(mut r) = Reader::open(body, "", mode, &mut errors, &allowed, READ_ONLY) else {
            return Err(errors);
        };
        let mut patch = ClientPatch {
            name: r.required_text("name", SHORT_TEXT),
            email: r.email("email"),
            phone: r.text("phone", 64),
            tax_id: r.text("tax_id", 64),
            currency: r.currency("currency"),
            notes: r.text("notes", LONG_TEXT),
            address: Patch::Absent,
        };
        patch.address = match r.raw("address") {
            None => Patch::Absent,
            Some(Value::Null) => Patch::Clear,
            Some(value) => {
                let allowed = ["line1", "line2", "city", "state", "postal_code", "country"];
                match Reader::open(value, "address", Mode::Update, r.errors, &allowed, &[]) {
                    Some(mut a) => Patch::Set(AddressPatch {
                        line1: a.text("line1", SHORT_TEXT),
                        line2: a.text("line2", SHORT_TEXT),
                        city: a.text("city", SHORT_TEXT),
                        state: a.text("state", SHORT_TEXT),
                        postal_code: a.text("postal_code", 32),
                        country: a.country("country"),
                    }),
                    None => Patch::Absent,
                }
            }
        };
        finish(patch, errors)
    }

    pub fn apply(self, client: &mut Client) {
        self.name.apply_required(&mut client.name);
        self.email.apply(&mut client.email);
        self.phone.apply(&mut client.phone);
        self.tax_id.apply(&mut client.tax_id);
        self.currency.apply(&mut client.currency);
        self.notes.apply(&mut client.notes);
        match self.address {
            Patch::Absent => {}
            Patch::Clear => client.address = None,
            Patch::Set(address) => address.apply(&mut client.address),
        }
    }

    /// A new client from a validated create body.
    pub fn build(self, id: String, now: DateTime<Utc>) -> Client {
        let mut client = Client {
            id,
            name: String::new(),
            email: None,
            phone: None,
            address: None,
            tax_id: None,
            currency: None,
            notes: None,
            created_at: now,
            updated_at: now,
            archived: false,
        };
        self.apply(&mut client);
        client
    }
}

// ---------------------------------------------------------------------------------------------
// Product

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProductPatch {
    pub key: Patch<String>,
    pub name: Patch<String>,
    pub description: Patch<String>,
    pub unit_price: Patch<Decimal>,
    pub tax_rate: Patch<Decimal>,
    pub currency: Patch<String>,
}

impl ProductPatch {
    pub fn parse(body: &Value, mode: Mode) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let allowed = [
            "key",
            "name",
            "description",
            "unit_price",
            "tax_rate",
            "currency",
        ];
        let Some(mut r) = Reader::open(body, "", mode, &mut errors, &allowed, READ_ONLY) else {
            return Err(errors);
        };
        let patch = ProductPatch {
            key: r.required_text("key", 100),
            name: r.text("name", SHORT_TEXT),
            description: r.text("description", LONG_TEXT),
            unit_price: r.decimal("unit_price", MONEY),
            tax_rate: r.decimal("tax_rate", RATE),
            currency: r.currency("currency"),
        };
        finish(patch, errors)
    }

    pub fn apply(self, product: &mut Product) {
        self.key.apply_required(&mut product.key);
        self.name.apply(&mut product.name);
        self.description.apply(&mut product.description);
        self.unit_price.apply(&mut product.unit_price);
        self.tax_rate.apply(&mut product.tax_rate);
        self.currency.apply(&mut product.currency);
    }

    pub fn build(self, id: String, now: DateTime<Utc>) -> Product {
        let mut product = Product {
            id,
            key: String::new(),
            name: None,
            description: None,
            unit_price: None,
            tax_rate: None,
            currency: None,
            created_at: now,
            updated_at: now,
            archived: false,
        };
        self.apply(&mut product);
        product
    }
}

// ---------------------------------------------------------------------------------------------
// Invoice

/// A line item as a client sends it; [`LineItemInput::resolve`] turns it into a [`LineItem`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineItemInput {
    pub product_id: Option<String>,
    pub product_key: Option<String>,
    pub description: Option<String>,
    pub quantity: Option<Decimal>,
    pub unit_price: Option<Decimal>,
    pub tax_rate: Option<Decimal>,
}

impl LineItemInput {
    /// Whether this line names a product whose values fill what it leaves out.
    pub fn names_product(&self) -> bool {
        self.product_id.is_some() || self.product_key.is_some()
    }

    /// Fills what the line leaves out from `product` (API.md: "takes that product's description,
    /// price and tax rate for whatever it leaves out"). `path` is `line_items[i]`.
    pub fn resolve(self, product: Option<&Product>, path: &str) -> Result<LineItem, FieldError> {
        let unit_price = self
            .unit_price
            .or_else(|| product.and_then(|p| p.unit_price))
            .ok_or_else(|| {
                FieldError::new(
                    format!("{path}.unit_price"),
                    "is required unless the line names a product that has a price",
                )
            })?;
        Ok(LineItem {
            product_id: product.map(|p| p.id.clone()).or(self.product_id),
            product_key: product.map(|p| p.key.clone()).or(self.product_key),
            description: self
                .description
                .or_else(|| product.and_then(|p| p.description.clone().or(p.name.clone()))),
            quantity: self.quantity.unwrap_or(Decimal::ONE),
            unit_price,
            tax_rate: self
                .tax_rate
                .or_else(|| product.and_then(|p| p.tax_rate))
                .unwrap_or(Decimal::ZERO),
            amount: Decimal::ZERO,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct InvoicePatch {
    pub number: Patch<String>,
    pub client_id: Patch<String>,
    pub status: Patch<InvoiceStatus>,
    pub currency: Patch<String>,
    pub issue_date: Patch<NaiveDate>,
    pub due_date: Patch<NaiveDate>,
    /// Replaces the whole list when set.
    pub line_items: Patch<Vec<LineItemInput>>,
    pub notes: Patch<String>,
}

impl InvoicePatch {
    pub fn parse(body: &Value, mode: Mode) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let allowed = [
            "number",
            "client_id",
            "status",
            "currency",
            "issue_date",
            "due_date",
            "line_items",
            "notes",
        ];
        // Computed by the gateway; a client may send them back, and they are ignored.
        let ignored = [
            "id",
            "created_at",
            "updated_at",
            "archived",
            "subtotal",
            "tax_total",
            "total",
            "amount_paid",
            "balance",
        ];
        let Some(mut r) = Reader::open(body, "", mode, &mut errors, &allowed, &ignored) else {
            return Err(errors);
        };
        let number = r.with("number", |v| {
            let s = text(v, 64)?;
            if s.trim().is_empty() {
                Err("must not be empty".into())
            } else {
                Ok(s)
            }
        });
        let mut patch = InvoicePatch {
            client_id: {
                let id = r.id("client_id");
                r.require("client_id", id)
            },
            status: {
                // On update a client may send back the status it read (even partial or paid);
                // the backend refuses a change that only payments can make.
                let status = r.with("status", |v| {
                    match v.as_str().and_then(InvoiceStatus::parse) {
                        Some(s) if s.is_settable() || mode == Mode::Update => Ok(s),
                        Some(_) => {
                            Err("partial and paid follow from payments and cannot be set".into())
                        }
                        None => Err("must be one of draft, sent, viewed, void".into()),
                    }
                });
                r.not_null("status", status)
            },
            currency: {
                let currency = r.currency("currency");
                r.not_null("currency", currency)
            },
            issue_date: r.date("issue_date"),
            due_date: r.date("due_date"),
            notes: r.text("notes", LONG_TEXT),
            number: Patch::Absent,
            line_items: Patch::Absent,
        };
        // A number cannot be cleared: absent on create means "assign one".
        patch.number = match number {
            Patch::Clear => {
                r.fail("number", "cannot be null");
                Patch::Absent
            }
            other => other,
        };
        patch.line_items = match r.raw("line_items") {
            None => Patch::Absent,
            Some(Value::Null) => Patch::Set(Vec::new()),
            Some(Value::Array(items)) if items.len() > MAX_LINE_ITEMS => {
                r.fail(
                    "line_items",
                    format!("must have at most {MAX_LINE_ITEMS} items"),
                );
                Patch::Absent
            }
            Some(Value::Array(items)) => {
                let mut lines = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let prefix = format!("line_items[{i}]");
                    let allowed = [
                        "product_id",
                        "product_key",
                        "description",
                        "quantity",
                        "unit_price",
                        "tax_rate",
                    ];
                    if let Some(mut l) =
                        Reader::open(item, &prefix, Mode::Update, r.errors, &allowed, &["amount"])
                    {
                        lines.push(LineItemInput {
                            product_id: plain(l.id("product_id")),
                            product_key: plain(l.text("product_key", 100)),
                            description: plain(l.text("description", LONG_TEXT)),
                            quantity: plain(l.decimal("quantity", QUANTITY)),
                            unit_price: plain(l.decimal("unit_price", MONEY)),
                            tax_rate: plain(l.decimal("tax_rate", RATE)),
                        });
                    }
                }
                Patch::Set(lines)
            }
            Some(_) => {
                r.fail("line_items", "must be an array");
                Patch::Absent
            }
        };
        if let (Patch::Set(issue), Patch::Set(due)) = (&patch.issue_date, &patch.due_date)
            && due < issue
        {
            r.fail("due_date", "must not be before issue_date");
        }
        finish(patch, errors)
    }

    /// Applies every field except `line_items`, which need the backend's products to resolve.
    pub fn apply_fields(&mut self, invoice: &mut Invoice) {
        std::mem::take(&mut self.number).apply_required(&mut invoice.number);
        std::mem::take(&mut self.client_id).apply_required(&mut invoice.client_id);
        std::mem::take(&mut self.status).apply_required(&mut invoice.status);
        std::mem::take(&mut self.currency).apply_required(&mut invoice.currency);
        std::mem::take(&mut self.issue_date).apply(&mut invoice.issue_date);
        std::mem::take(&mut self.due_date).apply(&mut invoice.due_date);
        std::mem::take(&mut self.notes).apply(&mut invoice.notes);
    }
}

// ---------------------------------------------------------------------------------------------
// Payment

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PaymentPatch {
    pub invoice_id: Patch<String>,
    pub amount: Patch<Decimal>,
    pub currency: Patch<String>,
    pub date: Patch<NaiveDate>,
    pub method: Patch<String>,
    pub reference: Patch<String>,
}

impl PaymentPatch {
    pub fn parse(body: &Value, mode: Mode) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let allowed = [
            "invoice_id",
            "amount",
            "currency",
            "date",
            "method",
            "reference",
        ];
        let ignored = ["id", "created_at", "updated_at", "archived", "client_id"];
        let Some(mut r) = Reader::open(body, "", mode, &mut errors, &allowed, &ignored) else {
            return Err(errors);
        };
        let invoice_id = r.id("invoice_id");
        let amount = r.decimal("amount", POSITIVE_MONEY);
        let date = r.date("date");
        let patch = PaymentPatch {
            // On update it may be sent back as read; the backend refuses a different one.
            invoice_id: r.require("invoice_id", invoice_id),
            amount: r.require("amount", amount),
            currency: {
                let currency = r.currency("currency");
                r.not_null("currency", currency)
            },
            date: match date {
                Patch::Clear => {
                    r.fail("date", "cannot be null");
                    Patch::Absent
                }
                other => other,
            },
            method: r.text("method", 64),
            reference: r.text("reference", SHORT_TEXT),
        };
        // An update that leaves the amount alone is fine; `require` only insists on create.
        finish(patch, errors)
    }

    pub fn apply(self, payment: &mut Payment) {
        self.amount.apply_required(&mut payment.amount);
        self.currency.apply_required(&mut payment.currency);
        self.date.apply_required(&mut payment.date);
        self.method.apply(&mut payment.method);
        self.reference.apply(&mut payment.reference);
    }
}

// ---------------------------------------------------------------------------------------------
// Expense

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExpensePatch {
    pub amount: Patch<Decimal>,
    pub currency: Patch<String>,
    pub date: Patch<NaiveDate>,
    pub vendor: Patch<String>,
    pub category: Patch<String>,
    pub client_id: Patch<String>,
    pub notes: Patch<String>,
}

impl ExpensePatch {
    pub fn parse(body: &Value, mode: Mode) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let allowed = [
            "amount",
            "currency",
            "date",
            "vendor",
            "category",
            "client_id",
            "notes",
        ];
        let Some(mut r) = Reader::open(body, "", mode, &mut errors, &allowed, READ_ONLY) else {
            return Err(errors);
        };
        let amount = r.decimal("amount", POSITIVE_MONEY);
        let patch = ExpensePatch {
            amount: r.require("amount", amount),
            currency: {
                let currency = r.currency("currency");
                r.not_null("currency", currency)
            },
            date: r.date("date"),
            vendor: r.text("vendor", SHORT_TEXT),
            category: r.text("category", SHORT_TEXT),
            client_id: r.id("client_id"),
            notes: r.text("notes", LONG_TEXT),
        };
        finish(patch, errors)
    }

    pub fn apply(self, expense: &mut Expense) {
        self.amount.apply_required(&mut expense.amount);
        self.currency.apply_required(&mut expense.currency);
        self.date.apply(&mut expense.date);
        self.vendor.apply(&mut expense.vendor);
        self.category.apply(&mut expense.category);
        self.client_id.apply(&mut expense.client_id);
        self.notes.apply(&mut expense.notes);
    }
}

/// Parses a body for `resource` into a [`crate::Draft`].
pub fn parse_draft(
    resource: crate::Resource,
    body: &Value,
    mode: Mode,
) -> Result<crate::Draft, Vec<FieldError>> {
    use crate::{Draft, Resource};
    Ok(match resource {
        Resource::Clients => Draft::Client(ClientPatch::parse(body, mode)?),
        Resource::Products => Draft::Product(ProductPatch::parse(body, mode)?),
        Resource::Invoices => Draft::Invoice(InvoicePatch::parse(body, mode)?),
        Resource::Payments => Draft::Payment(PaymentPatch::parse(body, mode)?),
        Resource::Expenses => Draft::Expense(ExpensePatch::parse(body, mode)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.issue))
            .collect()
    }

    #[test]
    fn every_problem_is_named_by_its_path() {
        let body: Value = serde_json::from_str(
            r#"{"client_id": "cli_1", "currency": "XXY", "emial": 1,
                "line_items": [{"quantity": "1", "unit_price": "10"},
                               {"quantity": "abc", "unit_price": 1.123456789}]}"#,
        )
        .unwrap();
        let errors = fields(InvoicePatch::parse(&body, Mode::Create).unwrap_err());
        assert!(
            errors.contains(&"emial: is not a known field".to_string()),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.starts_with("currency: ")),
            "{errors:?}"
        );
        assert!(errors.contains(&"line_items[1].quantity: must be a decimal number".to_string()));
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("line_items[1].unit_price: must have at most"))
        );
        assert_eq!(errors.len(), 4, "{errors:?}");
    }

    #[test]
    fn numbers_and_strings_parse_exactly() {
        let body: Value = serde_json::from_str(r#"{"amount": 0.1, "currency": "USD"}"#).unwrap();
        let patch = ExpensePatch::parse(&body, Mode::Create).unwrap();
        assert_eq!(patch.amount, Patch::Set(crate::money::dec("0.1")));
        let body = json!({"amount": "1250.10"});
        let patch = ExpensePatch::parse(&body, Mode::Create).unwrap();
        assert_eq!(patch.amount.as_set().unwrap().to_string(), "1250.1");
    }

    #[test]
    fn create_needs_required_fields_update_does_not() {
        let errors = fields(ClientPatch::parse(&json!({}), Mode::Create).unwrap_err());
        assert_eq!(errors, vec!["name: is required"]);
        assert!(ClientPatch::parse(&json!({"phone": "1"}), Mode::Update).is_ok());
        let errors = fields(ClientPatch::parse(&json!({"name": null}), Mode::Update).unwrap_err());
        assert_eq!(errors, vec!["name: is required and cannot be null"]);
    }

    #[test]
    fn address_merges_and_null_clears() {
        let now = Utc::now();
        let mut client = ClientPatch::parse(
            &json!({"name": "A", "address": {"city": "Oslo", "country": "NO"}}),
            Mode::Create,
        )
        .unwrap()
        .build("cli_1".into(), now);
        ClientPatch::parse(&json!({"address": {"line1": "Gate 1"}}), Mode::Update)
            .unwrap()
            .apply(&mut client);
        let address = client.address.clone().unwrap();
        assert_eq!(address.city.as_deref(), Some("Oslo"));
        assert_eq!(address.line1.as_deref(), Some("Gate 1"));
        ClientPatch::parse(&json!({"address": null}), Mode::Update)
            .unwrap()
            .apply(&mut client);
        assert_eq!(client.address, None);
    }

    #[test]
    fn hostile_ids_are_not_ids() {
        assert!(is_valid_id("inv_0193a"));
        assert!(is_valid_id("3f1c2a9e-1b2c-4d5e-8f90-123456789abc"));
        assert!(!is_valid_id("1' OR '1'='1"));
        assert!(!is_valid_id("a\0b"));
        assert!(!is_valid_id(&"x".repeat(65)));
        assert!(!is_valid_id("../etc"));
    }
}
