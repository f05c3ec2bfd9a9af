/**
 * The quick start of the README, typed: an API key (made with the admin API when
 * NESTGATE_ADMIN_TOKEN is set, else read from NESTGATE_CLIENT_ID and NESTGATE_CLIENT_SECRET),
 * exchanged for tokens, data calls, and a refresh shared by concurrent calls.
 *
 *   NESTGATE_URL=http://127.0.0.1:8080 NESTGATE_ADMIN_TOKEN=… NESTGATE_ORG=default npm run quickstart
 */
import { createNestgate, type Credentials } from "./client.js";

const baseUrl = process.env["NESTGATE_URL"] ?? "http://127.0.0.1:8080";
const SCOPES = [
  "read:invoices", "write:invoices", "read:clients", "write:clients", "read:payments",
  "write:payments", "read:products", "write:products", "read:expenses", "write:expenses",
];

/** 1. An API key for the organization, with the scopes the integration needs. */
async function apiKey(): Promise<Credentials> {
  const admin = process.env["NESTGATE_ADMIN_TOKEN"];
  if (admin === undefined) {
    const clientId = process.env["NESTGATE_CLIENT_ID"];
    const clientSecret = process.env["NESTGATE_CLIENT_SECRET"];
    if (clientId === undefined || clientSecret === undefined) {
      throw new Error("set NESTGATE_ADMIN_TOKEN, or NESTGATE_CLIENT_ID and NESTGATE_CLIENT_SECRET");
    }
    return { clientId, clientSecret };
  }
  const response = await fetch(`${baseUrl}/admin/v1/keys`, {
    method: "POST",
    headers: { Authorization: `Bearer ${admin}`, "Content-Type": "application/json" },
    body: JSON.stringify({
      org: process.env["NESTGATE_ORG"] ?? "default",
      name: "typescript quick start",
      scopes: SCOPES,
    }),
  });
  if (response.status !== 201) {
    throw new Error(`creating the key answered ${response.status}: ${await response.text()}`);
  }
  const key = (await response.json()) as { client_id: string; client_secret: string };
  console.log(`1. API key ${key.client_id}`);
  return { clientId: key.client_id, clientSecret: key.client_secret };
}

async function main(): Promise<void> {
  const { api, tokens } = createNestgate({ baseUrl, credentials: await apiKey() });
  // 2. The credentials are exchanged for an access token on the first call.
  await tokens.token();
  console.log("2. access token issued");
  // 3. Data calls, typed end to end.
  const client = await api.POST("/api/v1/clients", {
    body: { name: "Acme Ltd", email: "billing@acme.example", currency: "USD" },
  });
  if (client.data === undefined) {
    throw new Error(`creating a client: ${JSON.stringify(client.error)}`);
  }
  const invoice = await api.POST("/api/v1/invoices", {
    body: {
      client_id: client.data.id,
      line_items: [{ description: "Consulting", quantity: "3", unit_price: "120.50", tax_rate: "8.875" }],
    },
  });
  if (invoice.data === undefined) {
    throw new Error(`creating an invoice: ${JSON.stringify(invoice.error)}`);
  }
  const listed = await api.GET("/api/v1/invoices", {
    params: { query: { client_id: client.data.id } },
  });
  if (listed.data === undefined) {
    throw new Error(`listing invoices: ${JSON.stringify(listed.error)}`);
  }
  const total = listed.data.data.map((i) => `${i.number} ${i.total} ${i.currency}`).join(", ");
  console.log(`3. ${listed.data.meta.total} invoice(s): ${total}`);
  // 4. A refresh before expiry, shared: five calls at once after the token is due trigger one
  // refresh (two refreshes of one token would revoke every session of the key).
  tokens.expire();
  const reads = await Promise.all(
    Array.from({ length: 5 }, () =>
      api.GET("/api/v1/invoices/{id}", { params: { path: { id: invoice.data.id } } }),
    ),
  );
  const failed = reads.filter((r) => r.data === undefined);
  if (failed.length > 0) {
    throw new Error(`after the refresh: ${JSON.stringify(failed.map((r) => r.error))}`);
  }
  console.log("4. refreshed once for 5 concurrent calls; all answered");
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
