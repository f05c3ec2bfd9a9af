/** Clients: create, find by email, change, archive. */
import type { Client_, Nestgate } from "../client.js";

export async function upsertClient(nestgate: Nestgate, email: string, name: string): Promise<Client_> {
  const { api } = nestgate;
  const found = await api.GET("/api/v1/clients", { params: { query: { email } } });
  const existing = found.data?.data[0];
  if (existing !== undefined) {
    const changed = await api.PATCH("/api/v1/clients/{id}", {
      params: { path: { id: existing.id } },
      body: { name },
    });
    if (changed.data === undefined) throw new Error(changed.error?.error.message);
    return changed.data;
  }
  const created = await api.POST("/api/v1/clients", { body: { name, email } });
  if (created.data === undefined) throw new Error(created.error?.error.message);
  return created.data;
}

export async function archiveClient(nestgate: Nestgate, id: string): Promise<void> {
  const archived = await nestgate.api.POST("/api/v1/clients/{id}/archive", { params: { path: { id } } });
  if (archived.error !== undefined) throw new Error(archived.error.error.message);
}
