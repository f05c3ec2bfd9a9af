/** React: a client's invoices as a hook (loading, the list, or the error). */
import { useEffect, useState } from "react";
import type { Invoice, Nestgate } from "../client.js";

export interface InvoicesState {
  loading: boolean;
  invoices: Invoice[];
  error: string | undefined;
}

export function useInvoices(nestgate: Nestgate, clientId: string): InvoicesState {
  const [state, setState] = useState<InvoicesState>({ loading: true, invoices: [], error: undefined });
  useEffect(() => {
    let current = true;
    nestgate.api
      .GET("/api/v1/invoices", { params: { query: { client_id: clientId } } })
      .then(({ data, error }) => {
        if (!current) return;
        setState({
          loading: false,
          invoices: data?.data ?? [],
          error: error === undefined ? undefined : error.error.message,
        });
      })
      .catch((error: unknown) => {
        if (current) setState({ loading: false, invoices: [], error: String(error) });
      });
    return () => {
      current = false;
    };
  }, [nestgate, clientId]);
  return state;
}
