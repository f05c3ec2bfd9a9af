/** Invoices: create from lines (totals are computed by the gateway), mark sent, download the PDF. */
import type { Invoice, Nestgate } from "../client.js";

export async function invoiceFor(nestgate: Nestgate, clientId: string, hours: string): Promise<Invoice> {
  const { api } = nestgate;
  const created = await api.POST("/api/v1/invoices", {
    body: {
      client_id: clientId,
      line_items: [{ description: "Consulting", quantity: hours, unit_price: "120.00", tax_rate: "8.875" }],
    },
    // One key per invoice meant: a retry of this create (by the client) happens once.
    headers: { "Idempotency-Key": crypto.randomUUID() },
  });
  if (created.data === undefined) throw new Error(created.error?.error.message);
  const sent = await api.POST("/api/v1/invoices/{id}/mark-sent", {
    params: { path: { id: created.data.id } },
  });
  if (sent.data === undefined) throw new Error(sent.error?.error.message);
  return sent.data;
}

export async function invoicePdf(nestgate: Nestgate, id: string): Promise<ArrayBuffer> {
  const pdf = await nestgate.api.GET("/api/v1/invoices/{id}/pdf", {
    params: { path: { id } },
    parseAs: "arrayBuffer",
  });
  if (pdf.data === undefined) throw new Error("no PDF");
  return pdf.data;
}

/** Every invoice of a client marked sent and not yet paid, page after page. */
export async function* openInvoices(nestgate: Nestgate, clientId: string): AsyncGenerator<Invoice> {
  for (let page = 1; ; page++) {
    const listed = await nestgate.api.GET("/api/v1/invoices", {
      params: { query: { client_id: clientId, status: "sent", page, per_page: 100 } },
    });
    if (listed.data === undefined) throw new Error(listed.error?.error.message);
    yield* listed.data.data;
    if (page >= listed.data.meta.total_pages) return;
  }
}
