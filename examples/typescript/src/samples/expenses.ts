/** Expenses: record one, optionally for a client. */
import type { Expense, Nestgate } from "../client.js";

export async function expense(nestgate: Nestgate, amount: string, currency: string): Promise<Expense> {
  const created = await nestgate.api.POST("/api/v1/expenses", {
    body: { amount, currency, category: "Travel" },
  });
  if (created.data === undefined) throw new Error(created.error?.error.message);
  return created.data;
}
