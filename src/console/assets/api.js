// The admin API, the only thing the console talks to. The session is an HttpOnly cookie the
// script never sees; calls that change something carry the session's CSRF token, kept here in
// memory only (never in the browser's storage).

let csrfToken = null;

export class ApiError extends Error {
  constructor(status, body) {
    const error = body && body.error;
    super(error && error.message ? error.message : `the gateway answered ${status}`);
    this.status = status;
    this.code = error ? error.code : undefined;
    this.details = error && Array.isArray(error.details) ? error.details : [];
  }
}

async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

function remember(session) {
  csrfToken = session.csrf_token;
  return session;
}

export const api = {
  session: async () => remember(await call('GET', '/admin/v1/session')),
  signIn: async (token) => remember(await call('POST', '/admin/v1/session', { token })),
  signOut: async () => {
    try {
      await call('DELETE', '/admin/v1/session');
    } finally {
      csrfToken = null;
    }
  },
  orgs: () => call('GET', '/admin/v1/orgs'),
  backends: () => call('GET', '/admin/v1/backends'),
  scopes: () => call('GET', '/admin/v1/scopes'),
  keys: (org) => call('GET', `/admin/v1/keys${org ? `?org=${encodeURIComponent(org)}` : ''}`),
  createKey: (org, name, scopes) => call('POST', '/admin/v1/keys', { org, name, scopes }),
  revokeKey: (clientId) => call('DELETE', `/admin/v1/keys/${encodeURIComponent(clientId)}`),
};
