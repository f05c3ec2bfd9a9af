/** Payments: record one; the invoice's balance and status follow. Money is a decimal string. */
import type { Nestgate, Payment } from "../client.js";

export async function pay(nestgate: Nestgate, invoiceId: string, amount: string): Promise<Payment> {
  const paid = await nestgate.api.POST("/api/v1/payments", {
    body: { invoice_id: invoiceId, amount, date: new Date().toISOString().slice(0, 10) },
  });
  if (paid.data === undefined) throw new Error(paid.error?.error.message);
  return paid.data;
}
