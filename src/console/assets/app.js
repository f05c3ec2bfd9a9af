// The console: sign-in, Organizations, Settings → API. Pages are addressed by the URL's
// fragment (#/orgs, #/settings/api), so the browser's back button and bookmarks work and no
// value ever travels in a query string.

import { api, ApiError } from './api.js';
import { h, fill, when, badge, table } from './dom.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const signOutButton = document.getElementById('sign-out');

// ---------------------------------------------------------------------------------------------
// Sign-in

function signInPage(notice) {
  nav.hidden = true;
  signOutButton.hidden = true;
  document.title = 'Sign in · nestgate console';
  const input = h('input', {
    // `off`: the operator token is not a password for the browser to offer to keep.
    id: 'token', name: 'token', type: 'password', autocomplete: 'off',
    required: true, 'aria-describedby': 'token-help',
  });
  const error = h('p', { id: 'sign-in-error', class: 'error', role: 'alert' });
  const form = h('form', { id: 'sign-in', class: 'card narrow' },
    h('h1', {}, 'Sign in'),
    notice ? h('p', { class: 'notice', role: 'status' }, notice) : null,
    h('label', { for: 'token' }, 'Operator token'),
    input,
    h('p', { id: 'token-help', class: 'muted' },
      'The value of the gateway\'s operator token variable (auth.admin_token_env). ',
      'It is sent once and kept nowhere in this browser; a session cookie stands for it.'),
    error,
    h('button', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    fill(error);
    const token = input.value;
    input.value = '';
    try {
      await api.signIn(token);
      signedIn();
    } catch (e) {
      fill(error, e.status === 401 ? 'That is not the operator token.' : e.message);
      input.focus();
    }
  });
  fill(main, form);
  input.focus();
}

function signedIn() {
  nav.hidden = false;
  signOutButton.hidden = false;
  route();
}

signOutButton.addEventListener('click', async () => {
  try {
    await api.signOut();
  } catch (e) {
    // A session that had already ended is signed out; anything else left it alive: say so.
    if (!(e instanceof ApiError && e.status === 401)) {
      fill(main, h('h1', { tabindex: '-1' }, 'Sign-out failed'),
        h('p', { class: 'error', role: 'alert' }, `You are still signed in: ${e.message}`));
      main.querySelector('h1').focus();
      return;
    }
  }
  signInPage('You are signed out.');
});

/** Runs a page's work; a session that ended sends the operator back to sign in. */
async function guarded(work) {
  try {
    await work();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      signInPage('Your session has ended. Sign in again.');
    } else {
      fill(main, h('h1', {}, 'Something failed'),
        h('p', { class: 'error', role: 'alert' }, e.message));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Pages

function route() {
  const keys = location.hash.startsWith('#/settings/api');
  for (const [link, current] of [['nav-orgs', !keys], ['nav-keys', keys]]) {
    const a = document.getElementById(link);
    if (current) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  guarded(keys ? keysPage : orgsPage);
}

window.addEventListener('hashchange', () => {
  if (!nav.hidden) route();
});

function readiness(backend) {
  if (backend.ready === null || backend.ready === undefined) return badge('unknown', 'Not probed yet');
  if (backend.ready) return badge('good', 'Ready');
  return h('span', {}, badge('bad', 'Not ready'), ' ', h('span', { class: 'muted' }, backend.error));
}

function backendCell(backend) {
  return h('span', {}, h('strong', {}, backend.name), ' ', h('span', { class: 'muted' }, `(${backend.kind})`));
}

function share(traffic) {
  if (!traffic.requests) return '—';
  const percent = (traffic.error_share * 100).toFixed(traffic.error_share < 0.1 ? 1 : 0);
  const text = `${percent} % (${traffic.server_errors})`;
  return traffic.server_errors ? badge('bad', text) : text;
}

function moveCell(move) {
  if (!move) return h('span', { class: 'muted' }, 'No move');
  const states = {
    not_started: 'not copied yet', copied: 'copied', frozen: 'frozen: writes refused',
    switched: 'switched', rolled_back: 'rolled back', thawed: 'thawed',
  };
  const lines = [
    h('div', {}, '→ ', backendCell(move.to), ' ', readiness(move.to)),
    h('div', {}, 'Cutover: ', badge(move.state === 'frozen' ? 'warn' : 'info', states[move.state] || move.state),
      move.running ? [' ', badge('info', 'run in progress')] : null),
  ];
  const run = move.last_run;
  if (run) {
    let verdict;
    if (run.interrupted) verdict = badge('warn', `interrupted: ${run.interrupted}`);
    else if (run.ok) verdict = badge('good', 'verified equal');
    else verdict = badge('bad', `${run.differences} differences`);
    lines.push(h('div', {}, `Last ${run.mode}: `, verdict, ' ', h('span', { class: 'muted' }, when(run.finished_at))));
  } else {
    lines.push(h('div', { class: 'muted' }, 'No copy has run yet'));
  }
  const shadow = Object.entries(move.shadow || {});
  if (move.shadow_reads || shadow.length) {
    const totals = { match: 0, mismatch: 0, error: 0, dropped: 0 };
    for (const [, outcomes] of shadow) {
      for (const [outcome, n] of Object.entries(outcomes)) totals[outcome] = (totals[outcome] || 0) + n;
    }
    lines.push(h('div', {}, `Shadow reads (${Math.round((move.shadow_reads || 0) * 100)} %): `,
      `${totals.match} match, `,
      totals.mismatch ? badge('bad', `${totals.mismatch} mismatch`) : '0 mismatch',
      `, ${totals.error} error, ${totals.dropped} dropped`));
  }
  if (move.route && move.route.first_write_on_target) {
    lines.push(h('div', { class: 'muted' }, `First write on ${move.route.to} ${when(move.route.first_write_on_target)}: no rollback`));
  }
  return h('div', { class: 'move' }, lines);
}

async function orgsPage() {
  document.title = 'Organizations · nestgate console';
  const [orgs, backends] = await Promise.all([api.orgs(), api.backends()]);
  const minutes = Math.round(orgs.window_seconds / 60);
  // Refreshed on request only: a page that redraws itself loses a screen reader's place.
  const refresh = h('button', {
    type: 'button', class: 'secondary', id: 'refresh',
    onclick: async () => {
      await guarded(orgsPage);
      document.getElementById('refresh')?.focus();
    },
  }, 'Refresh');
  fill(main,
    h('div', { class: 'heading' }, h('h1', {}, 'Organizations'), refresh),
    h('p', { class: 'muted' },
      `Requests over the last ${minutes} minutes, from this gateway instance. `,
      `Backends last probed ${when(orgs.checked_at)}.`),
    table('Organizations, their backends and moves',
      ['Organization', 'Backend', 'Readiness', 'Requests', 'Server errors', 'Move'],
      orgs.data.map((org) => [
        h('strong', {}, org.org),
        backendCell(org.backend),
        readiness(org.backend),
        String(org.traffic.requests),
        share(org.traffic),
        moveCell(org.move),
      ])),
    h('h2', {}, 'Backends'),
    h('p', { class: 'muted' }, 'Storage: ', readiness(backends.storage)),
    table('Backends and the organizations each serves',
      ['Backend', 'Kind', 'Readiness', 'Serves'],
      backends.data.map((b) => [
        h('strong', {}, b.name), b.kind, readiness(b),
        b.orgs.length ? b.orgs.join(', ') : h('span', { class: 'muted' }, 'no organization'),
      ])));
}

// ---------------------------------------------------------------------------------------------
// Settings → API

async function keysPage(notice) {
  document.title = 'API keys · nestgate console';
  const filter = new URLSearchParams(location.hash.split('?')[1] || '').get('org') || '';
  const [orgs, scopes, keys] = await Promise.all([api.orgs(), api.scopes(), api.keys(filter)]);
  const orgNames = orgs.data.map((o) => o.org);

  const select = h('select', { id: 'org-filter', name: 'org' },
    h('option', { value: '' }, 'All organizations'),
    orgNames.map((name) => h('option', { value: name, selected: name === filter }, name)));
  // Choosing an organization changes nothing until "Show" (moving through the list must not
  // reload the page under the keyboard).
  const filterForm = h('form', { class: 'toolbar', id: 'org-filter-form' },
    h('label', { for: 'org-filter' }, 'Organization'), select,
    h('button', { type: 'submit', class: 'secondary' }, 'Show'));
  filterForm.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = select.value ? `#/settings/api?org=${encodeURIComponent(select.value)}` : '#/settings/api';
  });

  const secretSlot = h('div', { id: 'secret-slot' });
  const createButton = h('button', { type: 'button', id: 'create-key' }, 'Create key');
  const createDialog = createKeyDialog(orgNames, scopes.data, filter);
  createButton.addEventListener('click', () => createDialog.open());
  const revokeDialog = revokeKeyDialog();

  const rows = keys.data.map((key) => [
    h('strong', { class: 'key-name' }, key.name || '(unnamed)'),
    key.org,
    h('code', {}, key.client_id),
    h('span', { class: 'scopes' }, key.scopes.join(' ')),
    when(key.created_at),
    key.last_used_at ? when(key.last_used_at) : h('span', { class: 'muted' }, 'never'),
    key.revoked_at ? h('span', {}, badge('bad', 'Revoked'), ' ', when(key.revoked_at)) : badge('good', 'Active'),
    key.revoked_at ? '' : h('button', {
      type: 'button', class: 'danger', 'aria-label': `Revoke ${key.name || key.client_id}`,
      'data-client-id': key.client_id, onclick: () => revokeDialog.open(key),
    }, 'Revoke'),
  ]);

  fill(main,
    h('p', { class: 'crumbs' }, 'Settings → API'),
    h('div', { class: 'heading' }, h('h1', {}, 'API keys'), createButton),
    h('p', { class: 'muted' },
      'An integration exchanges a key\'s client_id and secret for tokens at /api/v1/auth/token. ',
      'Revoking a key refuses its tokens at once.'),
    notice ? h('p', { class: 'notice', role: 'status', id: 'keys-notice', tabindex: '-1' }, notice) : null,
    secretSlot,
    filterForm,
    keys.data.length
      ? table('API keys', ['Name', 'Organization', 'Client ID', 'Scopes', 'Created', 'Last used', 'Status', 'Actions'], rows)
      : h('p', { class: 'empty' }, 'No API keys yet.'),
    createDialog.element,
    revokeDialog.element);
}

/** The one moment a secret is on the page: shown with a copy button, removed by "Done". */
function showSecret(slot, created) {
  const value = h('input', { id: 'new-secret', readonly: true, value: created.client_secret, class: 'mono', spellcheck: 'false' });
  const status = h('p', { id: 'copy-status', role: 'status' });
  const copy = h('button', { type: 'button', id: 'copy-secret' }, 'Copy secret');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(value.value);
    } catch {
      // Without the clipboard API (a page not on https or localhost): select it for Ctrl+C.
      value.select();
      if (!document.execCommand('copy')) {
        fill(status, 'Select the secret and copy it with Ctrl+C.');
        return;
      }
    }
    fill(status, 'Copied.');
  });
  const heading = h('h2', { tabindex: '-1' }, `Key created: ${created.name || created.client_id}`);
  const done = h('button', { type: 'button', class: 'secondary', id: 'secret-done' }, 'Done');
  const panel = h('section', { class: 'secret card', 'aria-labelledby': 'secret-heading' },
    heading,
    h('p', { class: 'warning' }, h('strong', {}, 'Copy the secret now: it will not be shown again. '),
      'The gateway keeps only its hash.'),
    h('dl', {}, h('dt', {}, 'Client ID'), h('dd', {}, h('code', { id: 'new-client-id' }, created.client_id))),
    h('label', { for: 'new-secret' }, 'Client secret'),
    h('div', { class: 'copy' }, value, copy),
    status,
    done);
  heading.id = 'secret-heading';
  done.addEventListener('click', async () => {
    slot.replaceChildren();
    await guarded(keysPage);
    document.getElementById('create-key')?.focus();
  });
  fill(slot, panel);
  heading.focus();
}

function createKeyDialog(orgNames, scopeNames, preselected) {
  const error = h('div', { class: 'error', role: 'alert', id: 'create-error' });
  const org = h('select', { id: 'new-org', name: 'org', required: true },
    orgNames.map((name) => h('option', { value: name, selected: name === preselected }, name)));
  const name = h('input', { id: 'new-name', name: 'name', type: 'text', maxlength: 200, autocomplete: 'off' });
  const boxes = scopeNames.map((scope) => {
    const id = `scope-${scope.replace(/[^a-z0-9]/gi, '-')}`;
    return h('div', { class: 'check' },
      h('input', { type: 'checkbox', id, name: 'scopes', value: scope }),
      h('label', { for: id }, scope));
  });
  const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
  const form = h('form', { method: 'dialog', id: 'create-form' },
    h('h2', { id: 'create-title' }, 'Create API key'),
    h('label', { for: 'new-org' }, 'Organization'), org,
    h('label', { for: 'new-name' }, 'Name'), name,
    h('fieldset', {}, h('legend', {}, 'Scopes'), h('div', { class: 'checks' }, boxes)),
    error,
    h('div', { class: 'actions' }, cancel, h('button', { type: 'submit', id: 'create-submit' }, 'Create key')));
  const dialog = h('dialog', { 'aria-labelledby': 'create-title', id: 'create-dialog' }, form);
  cancel.addEventListener('click', () => dialog.close());
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    fill(error);
    const scopes = boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
    try {
      const key = await api.createKey(org.value, name.value.trim(), scopes);
      dialog.close();
      // The list again, with the new key in it, and its secret above. The secret is shown
      // whatever becomes of the reload: it cannot be asked for again.
      try {
        await keysPage();
      } catch {
        fill(main, h('div', { id: 'secret-slot' }),
          h('p', { class: 'error', role: 'alert' }, 'The key was created, but the list could not be loaded.'));
      }
      showSecret(document.getElementById('secret-slot'), key);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return guarded(() => { throw e; });
      fill(error, h('p', {}, e.message),
        e.details.length ? h('ul', {}, e.details.map((d) => h('li', {}, `${d.field}: ${d.issue}`))) : null);
    }
  });
  return {
    element: dialog,
    open: () => {
      form.reset();
      fill(error);
      dialog.showModal();
      org.focus();
    },
  };
}

function revokeKeyDialog() {
  const text = h('p', { id: 'revoke-text' });
  const error = h('p', { class: 'error', role: 'alert' });
  const cancel = h('button', { type: 'button', class: 'secondary', id: 'revoke-cancel' }, 'Cancel');
  const confirm = h('button', { type: 'button', class: 'danger', id: 'revoke-confirm' }, 'Revoke key');
  const dialog = h('dialog', { 'aria-labelledby': 'revoke-title', 'aria-describedby': 'revoke-text', id: 'revoke-dialog' },
    h('h2', { id: 'revoke-title' }, 'Revoke this key?'), text, error,
    h('div', { class: 'actions' }, cancel, confirm));
  let target = null;
  cancel.addEventListener('click', () => dialog.close());
  confirm.addEventListener('click', async () => {
    fill(error);
    try {
      await api.revokeKey(target.client_id);
      dialog.close();
      await guarded(() => keysPage(`Key ${target.name || target.client_id} revoked: its tokens are refused.`));
      document.getElementById('keys-notice')?.focus();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return guarded(() => { throw e; });
      fill(error, e.message);
    }
  });
  return {
    element: dialog,
    open: (key) => {
      target = key;
      fill(text, 'Integrations using ', h('strong', {}, key.name || '(unnamed)'), ' (',
        h('code', {}, key.client_id), `, ${key.org}) stop working at once: every token it was given is refused. `,
        'This cannot be undone.');
      fill(error);
      dialog.showModal();
      cancel.focus();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Start: signed in already (the cookie is good), or the sign-in form.

(async () => {
  try {
    await api.session();
    signedIn();
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 404)) signInPage();
    else fill(main, h('p', { class: 'error', role: 'alert' }, e.message));
  }
})();
