// The Stampede web console: one page that talks to the admin API (/api, docs/admin-api.md) only.
// Pages are chosen by the URL fragment (#/queues/NAME), so the server serves one file per asset
// and nothing per page. Every value from the broker is put in the page as text, never as markup.

const REFRESH_MS = 2000;
// Samples kept per queue for the sparklines: two minutes at one sample per refresh.
const HISTORY = 60;
const PAGE_SIZE = 50;
const AUTH_KEY = 'stampede.console.auth';

// ---- The admin API -------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Credentials typed into the login form, kept for this tab only. Sent explicitly with
// `credentials: 'omit'`, so a 401 never opens the browser's own Basic prompt (which a page
// cannot style, and which would hide the API's message saying what is needed).
let authToken = sessionStorage.getItem(AUTH_KEY);
// Routes a broker answers 404 NotFound for (older than the console): asked once, then left alone.
const missingRoutes = new Set();

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (authToken) headers.Authorization = 'Basic ' + authToken;
  const init = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch('/api' + path, init);
  } catch (e) {
    throw new ApiError(0, 'Unreachable', 'the broker did not answer (' + e.message + ')');
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // A non-JSON answer (a proxy's error page, say) keeps its status below.
  }
  if (response.ok) return data;
  const err = new ApiError(
    response.status,
    (data && data.error) || 'HTTP' + response.status,
    (data && data.message) || response.statusText || 'request failed',
  );
  if (response.status === 401) askLogin(err.message);
  throw err;
}

// A route that may not exist on this broker yet: null when it answers 404 for the route itself.
async function optional(key, path) {
  if (missingRoutes.has(key)) return null;
  try {
    return await api('GET', path);
  } catch (e) {
    if (e.status === 404 && /no admin API route/.test(e.message)) {
      missingRoutes.add(key);
      return null;
    }
    throw e;
  }
}

const q = encodeURIComponent;

// ---- DOM helpers ---------------------------------------------------------------------------

// h('td', {class: 'num'}, 'text', childNode): attributes, `on…` listeners, text children.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const main = () => document.getElementById('main');

function fmtNum(n) {
  if (n === null || n === undefined) return '–';
  return Number(n).toLocaleString('en-US');
}

function fmtRate(r) {
  if (r === null || r === undefined || Number.isNaN(r)) return '–';
  return r >= 100 ? Math.round(r).toLocaleString('en-US') : r.toFixed(r >= 10 ? 1 : 2);
}

function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v : v.toFixed(1)) + ' ' + units[i];
}

function fmtTime(ms) {
  if (!ms) return '–';
  return new Date(ms).toLocaleString();
}

function fmtAge(ms) {
  if (ms === null || ms === undefined) return '–';
  const s = ms / 1000;
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min';
  if (s < 86400) return (s / 3600).toFixed(1) + ' h';
  return (s / 86400).toFixed(1) + ' d';
}

function stat(label, value, id) {
  return h('div', { class: 'stat' }, h('div', { class: 'v', id }, value), h('div', { class: 'k' }, label));
}

// A table whose cells name their column (shown as labels when rows become cards on a phone).
function table(caption, columns, rows, empty) {
  const head = h('tr', {}, columns.map(c => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label)));
  const body = h('tbody');
  if (rows.length === 0) {
    body.append(h('tr', {}, h('td', { colspan: columns.length, class: 'empty' }, empty)));
  }
  for (const row of rows) {
    body.append(h('tr', row.attrs || {}, columns.map((c, i) => {
      const cls = [c.num ? 'num' : '', c.cls || ''].join(' ').trim() || null;
      return h('td', { 'data-label': c.label, class: cls }, row.cells[i]);
    })));
  }
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'cards' }, h('caption', {}, caption), h('thead', {}, head), body));
}

function errorText(e) {
  return e instanceof ApiError ? `${e.code} (${e.status || 'no answer'}): ${e.message}` : String(e);
}

function showError(e, context) {
  const box = document.getElementById('errors');
  const item = h('div', { class: 'error' },
    h('span', {}, context ? context + ' — ' : '', h('strong', {}, e.code || 'Error'),
      e.status ? ` (${e.status})` : '', ': ', e.message),
    h('button', { type: 'button', class: 'secondary', 'aria-label': 'Dismiss error', onclick: () => item.remove() }, 'Dismiss'));
  box.append(item);
  while (box.children.length > 4) box.firstChild.remove();
  return item;
}

function clearErrors() {
  document.getElementById('errors').replaceChildren();
}

function setStatus(text) {
  document.getElementById('status').textContent = text;
}

// The confirmation every destructive action passes; resolves true only on the named button.
function confirmAction(title, message, label) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-message').textContent = message;
  document.getElementById('confirm-ok').textContent = label;
  const opener = document.activeElement;
  return new Promise(resolve => {
    dialog.addEventListener('close', () => {
      if (opener && opener.isConnected) opener.focus();
      resolve(dialog.returnValue === 'ok');
    }, { once: true });
    dialog.returnValue = 'cancel';
    dialog.showModal();
    // Cancel first: Enter on a dialog that just opened must not destroy anything.
    document.getElementById('confirm-cancel').focus();
  });
}

// A button that runs `action`, disabled while it runs, errors shown with `what`.
function actionButton(label, what, action, attrs) {
  const button = h('button', { type: 'button', ...attrs }, label);
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await action();
    } catch (e) {
      showError(e, what);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

// ---- Login (users mode) --------------------------------------------------------------------

function askLogin(why) {
  const dialog = document.getElementById('login');
  document.getElementById('login-why').textContent = why;
  if (!dialog.open) dialog.showModal();
  document.getElementById('login-user').focus();
}

function utf8Base64(text) {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

function setupLogin() {
  const form = document.getElementById('login-form');
  form.addEventListener('submit', e => {
    e.preventDefault();
    const user = form.elements.user.value;
    const password = form.elements.password.value;
    authToken = utf8Base64(user + ':' + password);
    sessionStorage.setItem(AUTH_KEY, authToken);
    form.elements.password.value = '';
    document.getElementById('login').close();
    showLogout();
    route();
  });
  document.getElementById('logout').addEventListener('click', () => {
    authToken = null;
    sessionStorage.removeItem(AUTH_KEY);
    showLogout();
    route();
  });
  showLogout();
}

function showLogout() {
  document.getElementById('logout').hidden = !authToken;
}

// ---- Client-side history: sparklines and rates ---------------------------------------------

const history = new Map();

function record(queue) {
  let samples = history.get(queue.name);
  if (!samples) history.set(queue.name, (samples = []));
  samples.push({
    t: performance.now(),
    depth: queue.visible + queue.in_flight,
    enqueued: queue.enqueued,
    delivered: queue.delivered,
    acked: queue.acked,
  });
  if (samples.length > HISTORY) samples.shift();
}

// The broker's rates when it reports them, else the counters' change over the last refresh.
function rates(queue) {
  if (queue.rates) {
    return { in: queue.rates.enqueued_per_s, out: queue.rates.delivered_per_s, ack: queue.rates.acked_per_s };
  }
  const s = history.get(queue.name) || [];
  if (s.length < 2) return { in: null, out: null, ack: null };
  const [a, b] = [s[s.length - 2], s[s.length - 1]];
  const dt = (b.t - a.t) / 1000;
  if (dt <= 0) return { in: null, out: null, ack: null };
  const per = k => Math.max(0, b[k] - a[k]) / dt;
  return { in: per('enqueued'), out: per('delivered'), ack: per('acked') };
}

function sparkline(name, width, height) {
  const samples = history.get(name) || [];
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('width', width);
  svg.setAttribute('height', height);
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('role', 'img');
  const depths = samples.map(s => s.depth);
  const max = Math.max(1, ...depths);
  svg.setAttribute('aria-label', depths.length
    ? `Depth over the last ${depths.length} samples: from ${Math.min(...depths)} to ${Math.max(...depths)}, now ${depths[depths.length - 1]}`
    : 'No depth samples yet');
  if (depths.length > 0) {
    const step = width / (HISTORY - 1);
    const x0 = width - step * (depths.length - 1);
    const pts = depths.map((d, i) => `${(x0 + i * step).toFixed(1)},${(height - 1 - (d / max) * (height - 2)).toFixed(1)}`);
    const area = document.createElementNS(ns, 'polygon');
    area.setAttribute('class', 'area');
    area.setAttribute('points', `${x0.toFixed(1)},${height} ${pts.join(' ')} ${width},${height}`);
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', pts.length === 1 ? `${x0 - 2},${pts[0].split(',')[1]} ${pts[0]}` : pts.join(' '));
    svg.append(area, line);
  }
  return svg;
}

// ---- Pages ---------------------------------------------------------------------------------

function queueLink(name) {
  return h('a', { href: '#/queues/' + q(name) }, name);
}

function isDeadLetterName(name) {
  return name.startsWith('DLQ.');
}

function headerValue(message, key) {
  const pair = message.headers.find(([k]) => k === key);
  return pair ? pair[1] : null;
}

// Queues: every queue of a page with live depth, rates and a sparkline; filter and paging.
const listState = { prefix: '', cursors: [null] };

function queuesPage() {
  const root = main();
  const overview = h('div', { class: 'stats', id: 'overview' });
  const filter = h('input', { id: 'prefix', type: 'search', value: listState.prefix, placeholder: 'orders.', autocomplete: 'off', spellcheck: 'false' });
  const holder = h('div', { id: 'queues' });
  const pageInfo = h('span', { class: 'muted', id: 'page-info' });
  const prev = h('button', { type: 'button', class: 'secondary', id: 'prev-page' }, '← Previous');
  const next = h('button', { type: 'button', class: 'secondary', id: 'next-page' }, 'Next →');
  let nextCursor = null;
  let asked = 0;
  root.replaceChildren(
    h('h1', {}, 'Queues'),
    overview,
    h('div', { class: 'toolbar' },
      h('div', { class: 'grow' }, h('label', { for: 'prefix' }, 'Filter by name prefix'), filter)),
    holder,
    h('div', { class: 'pager' }, prev, pageInfo, next),
  );
  let typing;
  filter.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      listState.prefix = filter.value;
      listState.cursors = [null];
      refresh();
    }, 250);
  });
  prev.addEventListener('click', () => { listState.cursors.pop(); refresh(); });
  next.addEventListener('click', () => { listState.cursors.push(nextCursor); refresh(); });

  async function refresh() {
    const after = listState.cursors[listState.cursors.length - 1];
    let path = `/queues?limit=${PAGE_SIZE}`;
    if (listState.prefix) path += '&prefix=' + q(listState.prefix);
    if (after) path += '&after=' + q(after);
    const me = ++asked;
    const [list, ov] = await Promise.all([api('GET', path), optional('overview', '/overview')]);
    // A click's refresh and the timer's may overlap: the older answer must not win.
    if (me !== asked) return;
    list.queues.forEach(record);
    nextCursor = list.next || null;
    prev.disabled = listState.cursors.length <= 1;
    next.disabled = !nextCursor;
    pageInfo.textContent = `Page ${listState.cursors.length}` + (list.queues.length ? ` · ${list.queues[0].name} … ${list.queues[list.queues.length - 1].name}` : '');
    if (ov) {
      overview.replaceChildren(
        stat('Queues', fmtNum(ov.queues)), stat('Topics', fmtNum(ov.topics)),
        stat('Connections', fmtNum(ov.connections)),
        stat('Waiting', fmtNum(ov.messages.visible)), stat('In flight', fmtNum(ov.messages.in_flight)),
        stat('In / s', fmtRate(ov.rates.enqueued_per_s)), stat('Out / s', fmtRate(ov.rates.delivered_per_s)),
        stat('Uptime', fmtAge(ov.uptime_s * 1000)),
      );
      if (ov.store && ov.store.failure) overview.append(h('div', { class: 'notice' }, 'Store not writable: ' + ov.store.failure));
    }
    const columns = [
      { label: 'Name', cls: 'name' }, { label: 'Waiting', num: true }, { label: 'In flight', num: true },
      { label: 'Consumers', num: true }, { label: 'Dead letters', num: true }, { label: 'In / s', num: true },
      { label: 'Out / s', num: true }, { label: 'Acked / s', num: true }, { label: 'Depth, 2 min' },
    ];
    const rows = list.queues.map(queue => {
      const r = rates(queue);
      return {
        attrs: { 'data-queue': queue.name },
        cells: [
          queueLink(queue.name), fmtNum(queue.visible), fmtNum(queue.in_flight), fmtNum(queue.consumers),
          queue.dead_letter_queue && queue.dead_letters > 0
            ? h('a', { href: '#/dlq/' + q(queue.dead_letter_queue), title: queue.dead_letter_queue }, fmtNum(queue.dead_letters))
            : fmtNum(queue.dead_letters),
          fmtRate(r.in), fmtRate(r.out), fmtRate(r.ack), sparkline(queue.name, 120, 24),
        ],
      };
    });
    holder.replaceChildren(table(
      listState.prefix ? `Queues whose name starts with “${listState.prefix}”` : 'All queues, by name',
      columns, rows, listState.prefix ? 'No queue has this prefix.' : 'No queues yet: send a message to create one.'));
  }
  return refresh;
}

// One queue: its numbers, settings (editable), consumers, bindings, messages, purge and delete.
function queuePage(name) {
  const root = main();
  const stats = h('div', { class: 'stats', id: 'queue-stats' });
  const spark = h('div', { class: 'panel' });
  const subs = h('div', { id: 'subscriptions' });
  const bindings = h('div', { id: 'bindings' });
  const counters = h('dl', { class: 'kv', id: 'counters' });
  const settingsForm = h('form', { id: 'settings', class: 'panel' });
  const messages = h('div', { id: 'messages' });
  const peekLimit = h('select', { id: 'peek-limit' }, [10, 20, 50, 100].map(n => h('option', { value: n, selected: n === 20 }, n)));
  const deadLetters = h('p', { id: 'dead-letter-link' });
  let settingsDirty = false;
  let loaded = false;

  root.replaceChildren(
    h('p', {}, h('a', { href: '#/queues' }, '← Queues')),
    h('h1', {}, name),
    stats,
    spark,
    deadLetters,
    h('div', { class: 'actions' },
      h('a', { href: '#/send/' + q('/queue/' + name) }, 'Send a message to this queue'),
    ),
    h('div', { class: 'actions' },
      actionButton('Purge waiting messages', 'Purging ' + name, purge, { class: 'danger', id: 'purge' }),
      actionButton('Delete queue', 'Deleting ' + name, remove, { class: 'danger', id: 'delete' }),
    ),
    h('h2', {}, 'Settings'),
    settingsForm,
    h('h2', {}, 'Consumers'),
    subs,
    h('h2', {}, 'Bindings'),
    bindings,
    h('h2', {}, 'Messages'),
    h('div', { class: 'toolbar' },
      h('div', {}, h('label', { for: 'peek-limit' }, 'Show up to'), peekLimit),
      actionButton('Peek', 'Peeking at ' + name, peek, { id: 'peek' })),
    messages,
    h('details', {}, h('summary', {}, 'Counters since start'), counters),
  );

  async function purge() {
    if (!await confirmAction('Purge ' + name + '?', 'Every waiting message of ' + name + ' is removed for good. Messages held by consumers stay with them.', 'Purge')) return;
    const r = await api('DELETE', `/queues/${q(name)}/messages`);
    setStatus(`Purged ${fmtNum(r.purged)} messages`);
    await Promise.all([refresh(), peek()]);
  }

  async function remove() {
    if (!await confirmAction('Delete ' + name + '?', 'The queue, its messages and its bindings are removed for good.', 'Delete')) return;
    await api('DELETE', `/queues/${q(name)}`);
    setStatus('Deleted ' + name);
    location.hash = '#/queues';
  }

  async function peek() {
    const r = await api('GET', `/queues/${q(name)}/messages?limit=${peekLimit.value}`);
    const dead = r.messages.some(m => headerValue(m, 'x-death-reason') !== null);
    if (dead || isDeadLetterName(name)) {
      deadLetters.replaceChildren(h('a', { href: '#/dlq/' + q(name) }, 'Why these messages died, and redrive them'));
    }
    messages.replaceChildren(messageTable(r.messages, 'Waiting messages, oldest first (peeked, not delivered)'));
  }

  const fields = [
    { key: 'visibility_timeout_s', label: 'Visibility timeout (s)', hint: 'blank: only when the consumer goes away', nullable: true },
    { key: 'max_deliveries', label: 'Max deliveries', hint: 'blank: never dead-lettered', nullable: true, int: true },
    { key: 'dead_letter_queue', label: 'Dead-letter queue', hint: '{queue} is this queue\u2019s name', text: true },
    { key: 'retention_s', label: 'Retention (s)' },
    { key: 'max_messages', label: 'Max messages', hint: 'blank: no limit', nullable: true, int: true },
    { key: 'max_bytes', label: 'Max bytes', hint: 'blank: no limit', nullable: true, int: true },
    { key: 'redelivery_delay_s', label: 'Redelivery delay (s)', hint: 'after a NACK or a visibility timeout' },
    { key: 'redelivery_multiplier', label: 'Redelivery delay multiplier', hint: '1–10, per delivery' },
    { key: 'redelivery_delay_max_s', label: 'Redelivery delay cap (s)', hint: 'blank: no cap below 12 h', nullable: true },
  ];

  function fillSettings(settings) {
    settingsForm.replaceChildren(
      // Only what this broker reports: an older one has fewer settings.
      h('div', { class: 'settings' }, fields.filter(f => f.key in settings).map(f => h('div', {},
        h('label', { for: 'set-' + f.key }, f.label),
        h('input', {
          id: 'set-' + f.key, name: f.key, value: settings[f.key] ?? '',
          type: f.text ? 'text' : 'number', min: f.text ? null : 0, step: f.int ? 1 : 'any',
          required: !f.nullable || null, 'aria-describedby': f.hint ? 'hint-' + f.key : null,
          'data-was': settings[f.key] ?? '',
          oninput: () => { settingsDirty = true; },
        }),
        f.hint ? h('div', { class: 'hint', id: 'hint-' + f.key }, f.hint) : null))),
      h('div', { class: 'actions' },
        h('button', { type: 'submit', id: 'save-settings' }, 'Save settings'),
        h('button', { type: 'reset', class: 'secondary', onclick: () => { settingsDirty = false; } }, 'Undo changes')),
      h('p', { class: 'muted', id: 'settings-result' }),
    );
  }

  settingsForm.addEventListener('submit', async e => {
    e.preventDefault();
    const patch = {};
    for (const f of fields) {
      const input = settingsForm.elements[f.key];
      if (!input || input.value === input.dataset.was) continue;
      patch[f.key] = f.text ? input.value : input.value === '' ? null : Number(input.value);
    }
    const result = document.getElementById('settings-result');
    if (Object.keys(patch).length === 0) {
      result.textContent = 'Nothing changed.';
      return;
    }
    try {
      const detail = await api('PATCH', `/queues/${q(name)}`, patch);
      settingsDirty = false;
      fillSettings(detail.settings);
      document.getElementById('settings-result').textContent = 'Saved: ' + Object.keys(patch).join(', ') + '.';
    } catch (err) {
      showError(err, 'Saving the settings of ' + name);
    }
  });

  async function refresh() {
    let d;
    try {
      d = await api('GET', `/queues/${q(name)}`);
    } catch (e) {
      if (e.status === 404) {
        stats.replaceChildren(h('p', { class: 'notice' }, 'There is no queue ' + name + ' (any more).'));
        return;
      }
      throw e;
    }
    record(d);
    const r = rates(d);
    stats.replaceChildren(...[
      stat('Waiting', fmtNum(d.visible), 'stat-visible'), stat('In flight', fmtNum(d.in_flight), 'stat-in-flight'),
      stat('Consumers', fmtNum(d.consumers), 'stat-consumers'), stat('Bytes', fmtBytes(d.bytes)),
      d.delayed === undefined ? null : stat('Delayed redeliveries', fmtNum(d.delayed)),
      stat('Oldest waiting', fmtAge(d.oldest_age_ms)),
      stat('In / s', fmtRate(r.in)), stat('Out / s', fmtRate(r.out)), stat('Acked / s', fmtRate(r.ack)),
      stat('Created', fmtTime(d.created_at_ms)),
    ].filter(Boolean));
    if (d.dead_letter_queue) {
      stats.append(h('div', { class: 'stat' },
        h('div', { class: 'v' }, d.dead_letters > 0 ? h('a', { href: '#/dlq/' + q(d.dead_letter_queue) }, fmtNum(d.dead_letters)) : '0'),
        h('div', { class: 'k' }, 'Dead letters in ', queueLink(d.dead_letter_queue))));
    }
    spark.replaceChildren(h('div', { class: 'muted' }, 'Depth (waiting + in flight), last 2 minutes'), sparkline(name, 600, 60));
    spark.lastChild.setAttribute('width', '100%');
    spark.lastChild.setAttribute('preserveAspectRatio', 'none');
    if (!settingsDirty) fillSettings(d.settings);
    subs.replaceChildren(table('Consumers of this queue',
      [{ label: 'Subscription' }, { label: 'Principal' }, { label: 'Ack' }, { label: 'Prefetch', num: true }, { label: 'Unacked', num: true }],
      d.subscriptions.map(s => ({ cells: [s.subscription, s.principal, s.ack, s.prefetch ? fmtNum(s.prefetch) : 'unlimited', fmtNum(s.unacked)] })),
      'No consumers.'));
    if (d.long_polls) subs.append(h('p', { class: 'muted' }, `${d.long_polls} OCI long polls waiting.`));
    if (d.bindings === undefined) {
      bindings.replaceChildren(h('p', { class: 'muted' }, 'This broker does not report bindings yet.'));
    } else {
      bindings.replaceChildren(table('Topics this queue receives copies from',
        [{ label: 'Topic' }, { label: 'How' }],
        d.bindings.map(b => ({ cells: [b.topic, b.virtual ? 'virtual topic (by its name)' : 'binding'] })),
        'Not bound to any topic.'));
    }
    counters.replaceChildren(...Object.entries(d.counters).flatMap(([k, v]) => [h('dt', {}, k.replace(/_/g, ' ')), h('dd', {}, fmtNum(v))]));
    if (!loaded) {
      loaded = true;
      await peek();
    }
  }
  return refresh;
}

// Peeked messages: id, delivery count, when, size, headers and the start of the body.
function messageTable(list, caption, selectable) {
  const columns = [
    ...(selectable ? [{ label: 'Select' }] : []),
    { label: 'Message id', cls: 'mono' }, { label: 'Deliveries', num: true },
    ...(selectable ? [{ label: 'Why it died' }, { label: 'Came from' }] : []),
    { label: 'Enqueued' }, { label: 'Size', num: true }, { label: 'Headers' }, { label: 'Body' },
  ];
  const rows = list.map(m => ({
    attrs: { 'data-message': m.message_id },
    cells: [
      ...(selectable ? [h('input', { type: 'checkbox', class: 'pick', value: m.message_id, 'aria-label': 'Select message ' + m.message_id })] : []),
      m.message_id, fmtNum(m.delivery_count),
      ...(selectable ? [headerValue(m, 'x-death-reason') ?? '–', headerValue(m, 'x-original-destination') ?? '–'] : []),
      fmtTime(m.enqueued_at_ms), fmtBytes(m.size),
      m.headers.length ? h('details', {}, h('summary', {}, `${m.headers.length} headers`),
        h('dl', { class: 'kv' }, m.headers.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))) : 'none',
      h('pre', { class: 'body-preview' }, m.body_preview + (m.body_truncated ? ' …' : '')),
    ],
  }));
  return table(caption, columns, rows, 'No waiting messages.');
}

// Dead-letter queues: those the current queues name, with their depth and where they come from.
function dlqIndexPage() {
  const holder = h('div', { id: 'dlqs' });
  main().replaceChildren(h('h1', {}, 'Dead letters'),
    h('p', { class: 'muted' }, 'Queues that hold messages other queues gave up on (too many deliveries, NACKed without requeue, expired visibility), and where they came from.'),
    holder);
  return async () => {
    const list = await api('GET', '/queues?limit=1000');
    const byDlq = new Map();
    for (const queue of list.queues) {
      if (!queue.dead_letter_queue || queue.dead_letters === 0) continue;
      const entry = byDlq.get(queue.dead_letter_queue) || { depth: queue.dead_letters, sources: [] };
      entry.sources.push(queue.name);
      byDlq.set(queue.dead_letter_queue, entry);
    }
    const rows = [...byDlq.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([dlq, e]) => ({
      attrs: { 'data-queue': dlq },
      cells: [h('a', { href: '#/dlq/' + q(dlq) }, dlq), fmtNum(e.depth), h('span', {}, e.sources.flatMap((s, i) => [i ? ', ' : '', queueLink(s)]))],
    }));
    holder.replaceChildren(table('Dead-letter queues holding messages' + (list.next ? ' (first 1,000 queues)' : ''),
      [{ label: 'Dead-letter queue', cls: 'name' }, { label: 'Waiting', num: true }, { label: 'Dead letters of' }],
      rows, 'No dead letters.'));
  };
}

// One dead-letter queue: why each message died, and redrive of all or the selected ones.
function dlqPage(name) {
  const holder = h('div', { id: 'dead-messages' });
  const result = h('p', { id: 'redrive-result', role: 'status' });
  const to = h('input', { id: 'redrive-to', placeholder: 'their original queue', autocomplete: 'off' });
  const selected = () => [...holder.querySelectorAll('input.pick:checked')].map(c => c.value);
  let asked = 0;

  async function redrive(body) {
    const target = to.value.trim();
    if (target) body.to = target;
    let total = { moved: 0, skipped: 0, missing: [], by_destination: {} };
    let r;
    // A long backlog moves in batches; each answer says how many remain.
    for (let batch = 0; batch < 100; batch++) {
      r = await api('POST', `/queues/${q(name)}/redrive`, body);
      total.moved += r.moved;
      total.skipped += r.skipped;
      total.missing.push(...r.missing);
      for (const [d, n] of Object.entries(r.by_destination)) total.by_destination[d] = (total.by_destination[d] || 0) + n;
      if (body.message_ids || r.remaining === 0 || r.moved === 0) break;
    }
    const where = Object.entries(total.by_destination).map(([d, n]) => `${n} to ${d}`).join(', ');
    result.className = 'done';
    result.textContent = `Moved ${total.moved}${where ? ' (' + where + ')' : ''}` +
      (total.skipped ? `; ${total.skipped} skipped (no original destination)` : '') +
      (total.missing.length ? `; ${total.missing.length} no longer waiting` : '') +
      `; ${r.remaining} remain here.`;
    await refresh();
  }

  const picked = actionButton('Redrive selected', 'Redriving from ' + name, async () => {
    const ids = selected();
    if (ids.length === 0) {
      result.className = '';
      result.textContent = 'Select messages first.';
      return;
    }
    await redrive({ message_ids: ids });
  }, { id: 'redrive-selected' });
  const all = actionButton('Redrive all', 'Redriving from ' + name, async () => {
    const where = to.value.trim() || 'the queue each came from';
    if (!await confirmAction('Redrive every message of ' + name + '?', 'Every waiting dead letter is moved back to ' + where + ', where consumers will get it again.', 'Redrive all')) return;
    await redrive({});
  }, { id: 'redrive-all', class: 'secondary' });

  main().replaceChildren(
    h('p', {}, h('a', { href: '#/dlq' }, '← Dead letters'), ' · ', queueLink(name)),
    h('h1', {}, 'Dead letters in ' + name),
    h('div', { class: 'toolbar' },
      h('div', { class: 'grow' }, h('label', { for: 'redrive-to' }, 'Redrive to (blank: back where each came from)'), to),
      picked, all),
    result,
    holder,
  );

  async function refresh() {
    const me = ++asked;
    const r = await api('GET', `/queues/${q(name)}/messages?limit=100`);
    if (me !== asked) return;
    const checked = new Set(selected());
    holder.replaceChildren(messageTable(r.messages, 'Dead letters, oldest first (up to 100 shown)', true));
    for (const box of holder.querySelectorAll('input.pick')) box.checked = checked.has(box.value);
  }
  return refresh;
}

// Connections: who is connected over which transport, and closing one.
function connectionsPage() {
  const holder = h('div', { id: 'connections' });
  main().replaceChildren(h('h1', {}, 'Connections'), holder);
  async function refresh() {
    const r = await optional('connections', '/connections');
    if (r === null) {
      holder.replaceChildren(h('p', { class: 'notice' }, 'This broker does not list connections yet.'));
      return;
    }
    const rows = r.connections.map(c => ({
      attrs: { 'data-connection': c.id },
      cells: [
        String(c.id), c.peer, `${c.listener} (${c.transport})`, c.principal || '–', c.version, c.client_id || '–',
        fmtTime(c.connected_at_ms), `${c.heartbeat_ms[0]} / ${c.heartbeat_ms[1]} ms`,
        c.subscriptions.length ? h('ul', {}, c.subscriptions.map(s => h('li', {}, `${s.destination} (${s.ack})`))) : 'none',
        actionButton('Close', 'Closing connection ' + c.id, async () => {
          if (!await confirmAction(`Close connection ${c.id}?`, `${c.peer} (${c.principal || 'anonymous'}) gets an ERROR frame saying an operator closed it.`, 'Close connection')) return;
          await api('DELETE', '/connections/' + q(String(c.id)));
          setStatus('Closed connection ' + c.id);
          await refresh();
        }, { class: 'danger', 'aria-label': 'Close connection ' + c.id }),
      ],
    }));
    holder.replaceChildren(table('Open STOMP connections (TCP, TLS and WebSocket)',
      [{ label: 'Session', num: true }, { label: 'Peer' }, { label: 'Listener' }, { label: 'User' }, { label: 'STOMP' },
        { label: 'Client id' }, { label: 'Since' }, { label: 'Heart-beats (send / receive)' }, { label: 'Subscriptions' }, { label: 'Action' }],
      rows, 'No connections.'));
  }
  return refresh;
}

// Send a test message through the admin API.
function sendPage(destination) {
  const result = h('p', { id: 'send-result', role: 'status' });
  const form = h('form', { id: 'send-form', class: 'panel' },
    h('label', { for: 'send-destination' }, 'Destination'),
    h('input', { id: 'send-destination', name: 'destination', required: true, value: destination || '', placeholder: '/queue/orders or /topic/prices', autocomplete: 'off' }),
    h('label', { for: 'send-headers' }, 'Headers, one “name: value” a line'),
    h('textarea', { id: 'send-headers', name: 'headers', placeholder: 'content-type: application/json', rows: 3 }),
    h('label', { for: 'send-body' }, 'Body'),
    h('textarea', { id: 'send-body', name: 'body', rows: 6 }),
    h('div', { class: 'actions' },
      h('label', { for: 'send-persistent', class: 'inline' },
        h('input', { id: 'send-persistent', name: 'persistent', type: 'checkbox', checked: true }), ' Persistent (written to disk before it is acknowledged)')),
    h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'send-submit' }, 'Send')),
  );
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const headers = {};
    for (const line of form.elements.headers.value.split('\n')) {
      if (!line.trim()) continue;
      const at = line.indexOf(':');
      if (at <= 0) {
        showError(new ApiError(0, 'InvalidHeader', `“${line}” is not “name: value”`), 'Sending');
        return;
      }
      headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    }
    const button = document.getElementById('send-submit');
    button.disabled = true;
    try {
      const r = await api('POST', '/messages', {
        destination: form.elements.destination.value.trim(),
        body: form.elements.body.value,
        headers,
        persistent: form.elements.persistent.checked,
      });
      result.className = 'done';
      result.textContent = `Sent to ${r.destination} at ${fmtTime(r.at_ms)}.`;
    } catch (err) {
      result.textContent = '';
      showError(err, 'Sending');
    } finally {
      button.disabled = false;
    }
  });
  main().replaceChildren(h('h1', {}, 'Send a message'), form, result);
  return null;
}

// ---- Routing and the refresh loop ----------------------------------------------------------

const routes = [
  [/^#\/queues\/(.+)$/, 'queues', m => queuePage(decodeURIComponent(m[1]))],
  [/^#\/dlq\/(.+)$/, 'dlq', m => dlqPage(decodeURIComponent(m[1]))],
  [/^#\/dlq$/, 'dlq', () => dlqIndexPage()],
  [/^#\/connections$/, 'connections', () => connectionsPage()],
  [/^#\/send(?:\/(.+))?$/, 'send', m => sendPage(m[1] && decodeURIComponent(m[1]))],
  [/^(?:#\/?(?:queues)?)?$/, 'queues', () => queuesPage()],
];

// Bumped on every navigation, so a refresh loop of a page left behind stops.
let generation = 0;

function route() {
  const gen = ++generation;
  clearErrors();
  setStatus('');
  const hash = location.hash;
  const found = routes.find(([re]) => re.test(hash));
  if (!found) {
    main().replaceChildren(h('h1', {}, 'Not found'), h('p', {}, 'No console page ', h('code', {}, hash), '. ', h('a', { href: '#/queues' }, 'Queues')));
    return;
  }
  const [re, nav, make] = found;
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const refresh = make(hash.match(re));
  document.title = (main().querySelector('h1')?.textContent || 'Console') + ' · Stampede';
  if (refresh) loop(refresh, gen);
}

async function loop(refresh, gen) {
  // The message of the current failure streak: one per streak, not one every refresh.
  let failure = null;
  while (gen === generation) {
    if (!document.hidden && !document.getElementById('login').open) {
      try {
        await refresh();
        if (gen !== generation) return;
        if (failure) failure.remove();
        failure = null;
        setStatus('Updated ' + new Date().toLocaleTimeString());
      } catch (e) {
        if (gen !== generation) return;
        if (!failure || !failure.isConnected) failure = showError(e, 'Refreshing');
        setStatus('Update failed: ' + errorText(e));
      }
    }
    await new Promise(resolve => setTimeout(resolve, REFRESH_MS));
  }
}

setupLogin();
window.addEventListener('hashchange', route);
route();
