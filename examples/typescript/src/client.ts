/**
 * A typed InvoiceNests client for nestgate: the types are generated from the gateway's OpenAPI
 * document (`npm run generate`), the calls made with openapi-fetch. It does the token dance:
 * the API key is exchanged for an access token, which is refreshed before it expires, one
 * refresh at a time whatever the number of calls waiting; a call answered `429` or `503` is
 * retried after `Retry-After` when that is safe (a read, or a write with an Idempotency-Key),
 * and one answered `401` once more with a new token.
 */
import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "./schema.js";

export type Schemas = components["schemas"];
export type Client_ = Schemas["Client"];
export type Invoice = Schemas["Invoice"];
export type Payment = Schemas["Payment"];
export type Product = Schemas["Product"];
export type Expense = Schemas["Expense"];
export type ApiError = Schemas["Error"];

/** An API key, as `POST /admin/v1/keys` or `nestgate keys create` gave it. */
export interface Credentials {
  clientId: string;
  clientSecret: string;
}

export interface Options {
  /** Where nestgate answers, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  credentials: Credentials;
  /** How many times a call answered `429` (or a safe `503`) is tried again; 3 by default. */
  retries?: number;
  /** Refresh this long before the access token expires; 60 s by default. */
  refreshMarginMs?: number;
  /** The fetch to use (the global one by default). */
  fetch?: (request: Request) => Promise<Response>;
}

type TokenResponse = Schemas["TokenResponse"];

interface Held {
  access: string;
  refresh: string;
  expiresAt: number;
}

/**
 * Access tokens for one API key. A refresh token works once: two refreshes of one token at
 * the same time would look like theft to nestgate, which then revokes every session of the key.
 * So there is never more than one exchange or refresh in flight: every caller waiting for a
 * token shares it.
 */
export class Tokens {
  private held: Held | undefined;
  private pending: Promise<string> | undefined;

  constructor(
    private readonly baseUrl: string,
    private readonly credentials: Credentials,
    private readonly fetcher: (request: Request) => Promise<Response>,
    private readonly marginMs: number,
  ) {}

  /** A valid access token: the one held, or a new one shared by every caller waiting for it. */
  async token(): Promise<string> {
    const held = this.held;
    if (held !== undefined && Date.now() < held.expiresAt) {
      return held.access;
    }
    this.pending ??= this.renew().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  /** Treats the token held as expired (the next call refreshes it). */
  expire(): void {
    if (this.held !== undefined) {
      this.held = { ...this.held, expiresAt: 0 };
    }
  }

  /** The access token was refused (`401`): renewed, unless another call did so already. */
  refused(access: string): void {
    if (this.held?.access === access) {
      this.expire();
    }
  }

  private async renew(): Promise<string> {
    const held = this.held;
    // A refresh token is spent by the request that carries it, answered or not: it is never
    // sent twice (nestgate takes a second use as theft). Whatever goes wrong, the key starts
    // again.
    this.held = undefined;
    if (held !== undefined) {
      const refreshed = await this.grant({
        grant_type: "refresh_token",
        refresh_token: held.refresh,
      }).catch(() => undefined);
      if (refreshed !== undefined) {
        return refreshed;
      }
    }
    const issued = await this.grant({
      grant_type: "client_credentials",
      client_id: this.credentials.clientId,
      client_secret: this.credentials.clientSecret,
    });
    if (issued === undefined) {
      throw new Error("nestgate refused the API key");
    }
    return issued;
  }

  /** One call of the token endpoint; `undefined` when the grant is refused. */
  private async grant(body: Record<string, string>): Promise<string | undefined> {
    const response = await this.fetcher(
      new Request(`${this.baseUrl}/api/v1/auth/token`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      }),
    );
    if (response.status === 400 || response.status === 401) {
      return undefined;
    }
    if (!response.ok) {
      throw new Error(`the token endpoint answered ${response.status}`);
    }
    const pair = (await response.json()) as TokenResponse;
    // Renewed before it expires: the margin, or half the token's life when that is shorter.
    const margin = Math.min(this.marginMs, pair.expires_in * 500);
    this.held = {
      access: pair.access_token,
      refresh: pair.refresh_token,
      expiresAt: Date.now() + pair.expires_in * 1000 - margin,
    };
    return pair.access_token;
  }
}

/**
 * Whether a call may be sent again after a `429` or `503`: a read, or a write with an
 * Idempotency-Key. A write without one may have happened before the refusal (a vendor can
 * answer `429` to a later step of a create), so it is never repeated.
 */
function safeToRepeat(request: Request): boolean {
  return request.method === "GET" || request.headers.has("Idempotency-Key");
}

/** Seconds in `Retry-After`: 1 when absent, empty or unreadable; capped at 60. */
function retryAfter(response: Response): number {
  const text = response.headers.get("Retry-After")?.trim() ?? "";
  const seconds = text === "" ? Number.NaN : Number(text);
  return Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds, 60) : 1;
}

/**
 * `fetcher`, with a call answered `429` or `503` tried again after `Retry-After` when that is
 * safe, and one answered `401` (its token revoked) tried once more with a new token.
 */
function retrying(
  fetcher: (request: Request) => Promise<Response>,
  tokens: Tokens,
  retries: number,
): (request: Request) => Promise<Response> {
  const limit = Number.isInteger(retries) && retries >= 0 ? retries : 3;
  return async (request: Request) => {
    let renewed = false;
    for (let attempt = 0; ; attempt++) {
      // Each attempt carries the token valid now (a wait may outlast the one held before).
      const sent = request.clone();
      sent.headers.set("Authorization", `Bearer ${await tokens.token()}`);
      const response = await fetcher(sent);
      if (response.status === 401 && !renewed) {
        renewed = true;
        tokens.refused(sent.headers.get("Authorization")?.slice("Bearer ".length) ?? "");
        await response.body?.cancel();
        continue;
      }
      const busy = response.status === 429 || response.status === 503;
      if (!busy || !safeToRepeat(request) || attempt >= limit) {
        return response;
      }
      await response.body?.cancel();
      await new Promise((resolve) => setTimeout(resolve, retryAfter(response) * 1000));
    }
  };
}

export interface Nestgate {
  /** The typed client: `api.GET("/api/v1/invoices/{id}", { params: { path: { id } } })`. */
  api: Client<paths>;
  tokens: Tokens;
}

export function createNestgate(options: Options): Nestgate {
  const base = options.fetch ?? ((request: Request) => fetch(request));
  const tokens = new Tokens(
    options.baseUrl,
    options.credentials,
    base,
    options.refreshMarginMs ?? 60_000,
  );
  // The token is set on each attempt by `retrying`, so a retried call never carries a stale one.
  const api = createClient<paths>({
    baseUrl: options.baseUrl,
    fetch: retrying(base, tokens, options.retries ?? 3),
  });
  return { api, tokens };
}
