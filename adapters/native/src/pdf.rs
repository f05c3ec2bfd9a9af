//! The invoice as a PDF, drawn with pdf-writer and the standard Helvetica font (nothing to embed).

use nestgate_contract::records::{Client, Invoice};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

const WIDTH: f32 = 595.0; // A4 in points
const HEIGHT: f32 = 842.0;
const MARGIN: f32 = 56.0;
const LINE: f32 = 16.0;

/// Text as the font can show it: Latin-1 passes (WinAnsi agrees with it on printable
/// characters), anything else becomes `?` rather than garbage.
fn encode(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match u32::from(c) {
            0x20..=0x7e | 0xa0..=0xff => c as u8,
            _ => b'?',
        })
        .collect()
}

/// Lays text out line by line, starting a new page when one is full.
struct Layout {
    pages: Vec<Content>,
    y: f32,
}

impl Layout {
    fn new() -> Self {
        let mut layout = Layout {
            pages: Vec::new(),
            y: 0.0,
        };
        layout.new_page();
        layout
    }

    fn new_page(&mut self) {
        self.pages.push(Content::new());
        self.y = HEIGHT - MARGIN;
    }

    fn text(&mut self, x: f32, size: f32, bold: bool, text: &str) {
        let content = self.pages.last_mut().expect("a page");
        content.begin_text();
        content.set_font(Name(if bold { b"F2" } else { b"F1" }), size);
        content.next_line(x, self.y);
        content.show(Str(&encode(text)));
        content.end_text();
    }

    fn advance(&mut self, by: f32) {
        self.y -= by;
        if self.y < MARGIN {
            self.new_page();
        }
    }

    fn row(&mut self, cells: &[(f32, &str)], bold: bool) {
        for (x, text) in cells {
            self.text(*x, 10.0, bold, text);
        }
        self.advance(LINE);
    }
}

pub(crate) fn render(invoice: &Invoice, client: Option<&Client>) -> Vec<u8> {
    let mut layout = Layout::new();
    layout.text(MARGIN, 22.0, true, &format!("Invoice {}", invoice.number));
    layout.advance(LINE * 2.0);
    let bill_to = client
        .map(|c| c.name.as_str())
        .unwrap_or(invoice.client_id.as_str());
    layout.row(&[(MARGIN, "Bill to:"), (MARGIN + 90.0, bill_to)], false);
    let dates = [("Issued:", invoice.issue_date), ("Due:", invoice.due_date)];
    for (label, date) in dates {
        if let Some(date) = date {
            layout.row(
                &[(MARGIN, label), (MARGIN + 90.0, &date.to_string())],
                false,
            );
        }
    }
    layout.row(
        &[
            (MARGIN, "Status:"),
            (MARGIN + 90.0, invoice.status.as_str()),
        ],
        false,
    );
    layout.advance(LINE);

    let columns = [
        MARGIN,
        MARGIN + 250.0,
        MARGIN + 310.0,
        MARGIN + 390.0,
        MARGIN + 430.0,
    ];
    let header = ["Description", "Qty", "Unit price", "Tax %", "Amount"];
    let cells: Vec<(f32, &str)> = columns.iter().copied().zip(header).collect();
    layout.row(&cells, true);
    for item in &invoice.line_items {
        let description = item
            .description
            .as_deref()
            .or(item.product_key.as_deref())
            .unwrap_or("")
            .chars()
            .take(45)
            .collect::<String>();
        let values = [
            description,
            item.quantity.to_string(),
            item.unit_price.to_string(),
            item.tax_rate.to_string(),
            item.amount.to_string(),
        ];
        let cells: Vec<(f32, &str)> = columns
            .iter()
            .copied()
            .zip(values.iter().map(String::as_str))
            .collect();
        layout.row(&cells, false);
    }
    layout.advance(LINE);
    let label_x = MARGIN + 330.0;
    let totals = [
        ("Subtotal", &invoice.subtotal),
        ("Tax", &invoice.tax_total),
        ("Total", &invoice.total),
        ("Paid", &invoice.amount_paid),
        ("Balance due", &invoice.balance),
    ];
    for (label, value) in totals {
        let amount = format!("{} {}", value, invoice.currency);
        layout.row(
            &[(label_x, label), (columns[4], &amount)],
            label == "Balance due",
        );
    }
    if let Some(notes) = &invoice.notes {
        layout.advance(LINE);
        for line in notes.lines().take(40) {
            layout.row(
                &[(MARGIN, &line.chars().take(90).collect::<String>())],
                false,
            );
        }
    }
    write(layout.pages)
}

fn write(pages: Vec<Content>) -> Vec<u8> {
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let first = 5;
    let page_ids: Vec<Ref> = (0..pages.len())
        .map(|i| Ref::new(first + 2 * i as i32))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(pages.len() as i32);
    for (i, content) in pages.into_iter().enumerate() {
        let page_id = page_ids[i];
        let content_id = Ref::new(page_id.get() + 1);
        let mut page = pdf.page(page_id);
        page.media_box(Rect::new(0.0, 0.0, WIDTH, HEIGHT));
        page.parent(tree);
        page.contents(content_id);
        page.resources()
            .fonts()
            .pair(Name(b"F1"), regular)
            .pair(Name(b"F2"), bold);
        page.finish();
        pdf.stream(content_id, &content.finish());
    }
    let latin = Name(b"WinAnsiEncoding");
    pdf.type1_font(regular)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(latin);
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(latin);
    pdf.finish()
}
