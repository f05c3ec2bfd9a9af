/** Products: a catalogue entry that invoice lines can name by id or key. */
import type { Nestgate, Product } from "../client.js";

export async function product(nestgate: Nestgate, key: string, unitPrice: string): Promise<Product> {
  const created = await nestgate.api.POST("/api/v1/products", {
    body: { key, name: key, unit_price: unitPrice, tax_rate: "0" },
  });
  if (created.data === undefined) throw new Error(created.error?.error.message);
  return created.data;
}
