// pbxsync dashboard: plain JavaScript, no framework. It reads /api/v1
// (docs/api.md), follows /api/v1/events (server-sent events) and, with the
// token that `pbxsync token` prints, sends the actions. Every value from
// the agent goes into the page as text (textContent), never as HTML.
'use strict';

const TOKEN_KEY = 'pbxsync-token';

const state = {
  status: null,     // /api/v1/status
  node: null,       // /api/v1/node
  token: sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY) || '',
  histories: {},    // job -> [generation info]
  historyKey: {},   // job -> what the history was fetched for
  pick: {},         // job -> {from, to}: the generations to compare
  diffs: {},        // job -> {from, to, changes, error, content}
  conflicts: {},    // mesh job -> [conflict record] (/api/v1/jobs/{job}/conflicts)
  conflictsKey: {}, // mesh job -> the count they were fetched for
  confirm: '',      // the action button waiting for its second click (Escape cancels)
};

// h builds an element: h('td', {class: 'num'}, 'text', child, ...).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function badge(text, cls) {
  return h('span', {class: 'badge ' + (cls || text || '').toString().replace(/[^a-z-]/gi, '')}, text);
}

function bytes(n) {
  if (n === undefined || n === null) return '';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + u[i];
}

function ago(t) {
  if (!t) return 'never';
  const d = (Date.now() - new Date(t).getTime()) / 1000;
  if (isNaN(d)) return '';
  if (d < 1) return 'now';
  if (d < 60) return Math.round(d) + ' s ago';
  if (d < 3600) return Math.round(d / 60) + ' min ago';
  if (d < 86400) return Math.round(d / 3600) + ' h ago';
  return new Date(t).toLocaleString();
}

function when(t) {
  if (!t) return '';
  const d = new Date(t);
  return isNaN(d) ? '' : d.toLocaleString();
}

function duration(s) {
  s = Math.round(s || 0);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
}

function minFree(disks) {
  if (!disks || !disks.length) return null;
  return disks.reduce((m, d) => (m === null || d.free_bytes < m.free_bytes ? d : m), null);
}

// flash shows a message at the top (kind: '', 'ok' or 'error') until the
// next one or a click on it: the outcome of an action stays readable.
function flash(msg, kind) {
  const el = document.getElementById('flash');
  el.textContent = msg;
  el.className = 'flash ' + (kind || '');
  el.title = 'click to dismiss';
  el.hidden = false;
}

function authHeaders() {
  return state.token ? {'Authorization': 'Bearer ' + state.token} : {};
}

async function getJSON(path, withToken) {
  const r = await fetch(path, {headers: withToken ? authHeaders() : {}, cache: 'no-store'});
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((body && body.error) || (r.status + ' ' + r.statusText));
  return body;
}

// ---- token ----

function renderMode() {
  const rw = !!state.token;
  const mode = document.getElementById('mode');
  mode.textContent = rw ? 'actions enabled' : 'read-only';
  mode.className = 'mode ' + (rw ? 'rw' : 'ro');
  document.getElementById('token-input').hidden = rw;
  document.getElementById('token-use').hidden = rw;
  document.querySelector('.remember').hidden = rw;
  document.getElementById('token-forget').hidden = !rw;
}

async function useToken(ev) {
  ev.preventDefault();
  const input = document.getElementById('token-input');
  const tok = input.value.trim();
  if (!tok) { flash('Paste the token that "pbxsync token" prints on this node.', 'error'); return; }
  const r = await fetch('api/v1/token', {headers: {'Authorization': 'Bearer ' + tok}, cache: 'no-store'});
  if (r.status !== 204) {
    const body = await r.json().catch(() => ({}));
    flash('Token refused (' + r.status + '): ' + (body.error || r.statusText), 'error');
    return;
  }
  state.token = tok;
  input.value = '';
  (document.getElementById('token-remember').checked ? localStorage : sessionStorage).setItem(TOKEN_KEY, tok);
  flash('Token accepted: actions are enabled.', 'ok');
  renderMode();
  renderJobs();
}

function forgetToken() {
  state.token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TOKEN_KEY);
  for (const j of Object.keys(state.diffs)) state.diffs[j] = null;
  renderMode();
  renderJobs();
  flash('Token forgotten: the dashboard is read-only.');
}

// ---- actions ----

// act sends POST /api/v1/jobs/{job}/{action} with the token and the CSRF
// header (docs/api.md); the answer is shown at the top.
async function act(job, action, body, label) {
  if (!state.token) { flash('Enter the token first ("pbxsync token" prints it).', 'error'); return; }
  flash(label + '…');
  let r, res;
  try {
    r = await fetch('api/v1/jobs/' + encodeURIComponent(job) + '/' + action, {
      method: 'POST',
      headers: Object.assign({'Content-Type': 'application/json', 'X-Pbxsync-Csrf': '1'}, authHeaders()),
      body: JSON.stringify(body || {}),
    });
    res = await r.json().catch(() => ({}));
  } catch (e) {
    flash(label + ' failed: ' + e.message, 'error');
    return;
  }
  if (r.status === 401) {
    flash(label + ' refused (401): ' + (res.error || 'invalid token') + '. Enter the token again.', 'error');
    forgetToken();
    return;
  }
  if (!r.ok) { flash(label + ' refused (' + r.status + '): ' + (res.error || r.statusText), 'error'); return; }
  flash(label + ': done' + (res.generation ? ', job ' + job + ' is at generation ' + res.generation : '') + '.', 'ok');
  state.historyKey[job] = '';
  refreshHistories();
}

// button makes an action button; dangerous ones need a second click.
function actionButton(key, label, confirmLabel, run, opts) {
  opts = opts || {};
  const waiting = state.confirm === key;
  return h('button', {
    type: 'button', class: 'small' + (waiting ? ' confirm' : ''), disabled: !state.token,
    title: state.token ? (opts.title || '') : 'read-only: enter the token to act',
    'data-action': opts.action, 'data-job': opts.job, 'data-gen': opts.gen,
    onclick: () => {
      if (confirmLabel && state.confirm !== key) {
        state.confirm = key;
        renderJobs();
        return;
      }
      state.confirm = '';
      renderJobs();
      run();
    },
  }, waiting ? confirmLabel : label);
}

// ---- farm ----

function renderFarm() {
  const st = state.status;
  const el = document.getElementById('farm');
  if (!st) return;
  document.getElementById('node-name').textContent = st.node + (st.id ? ' · ' + st.id.slice(0, 14) + '…' : '');
  document.title = 'pbxsync · ' + st.node;
  const rows = [];
  const n = state.node;
  const self = {
    name: st.node + ' (this node)', connected: true, self: true,
    state: n, rtt: '', seen: 'up ' + duration(st.uptime_s), error: n && n.asterisk_error,
  };
  rows.push(self);
  for (const p of st.peers || []) {
    let problem = p.last_error || '';
    if (!p.connected && p.down_since) problem = 'down since ' + when(p.down_since) + (problem ? '; ' + problem : '');
    if (p.slow) problem = 'slow since ' + when(p.slow_since) + (problem ? '; ' + problem : '');
    rows.push({name: p.name, connected: p.connected, slow: p.slow, state: p.state, rtt: p.connected ? p.rtt_ms.toFixed(1) + ' ms' : '',
      seen: ago(p.last_seen), error: problem, sent: p.bytes_sent, received: p.bytes_received});
  }
  const table = h('table', {class: 'farm'},
    h('thead', {}, h('tr', {}, ['Node', 'Link', 'RTT', 'Asterisk', 'Free space', 'Load', 'Seen', 'Problem'].map((t) => h('th', {}, t)))),
    h('tbody', {}, rows.map((r) => {
      const s = r.state || {};
      const free = minFree(s.disks);
      let ast = s.asterisk ? badge(s.asterisk, s.asterisk) : h('span', {class: 'muted'}, r.state ? 'not configured' : 'unknown');
      const astInfo = [];
      if (s.asterisk_version) astInfo.push(s.asterisk_version);
      if (s.asterisk === 'up' && s.channels !== undefined) astInfo.push((s.channels || 0) + ' channels');
      if (s.asterisk === 'up' && s.fully_booted === false) astInfo.push('booting');
      return h('tr', {'data-peer': r.self ? '' : r.name},
        h('td', {}, h('strong', {}, r.name)),
        h('td', {}, r.self ? badge('self', 'good') : badge(r.connected ? (r.slow ? 'slow' : 'up') : 'down')),
        h('td', {class: 'num'}, r.rtt),
        h('td', {}, ast, ' ', h('span', {class: 'muted'}, astInfo.join(' · '))),
        h('td', {class: 'num', title: free ? free.path : ''}, free ? bytes(free.free_bytes) : ''),
        h('td', {class: 'num'}, s.load1 !== undefined ? s.load1.toFixed(2) : ''),
        h('td', {}, r.seen),
        h('td', {class: 'error-text wide'}, r.error || ''));
    })));
  el.replaceChildren(table);
}

// ---- errors ----

function renderErrors() {
  const st = state.status;
  if (!st) return;
  const items = [];
  const add = (where, what, t) => items.push({where, what, t});
  if (state.node && state.node.asterisk_error) add(st.node + ' Asterisk', state.node.asterisk_error);
  for (const p of st.peers || []) {
    if (p.last_error) add('peer ' + p.name, p.last_error, p.down_since);
    else if (!p.connected) add('peer ' + p.name, 'down since ' + when(p.down_since), p.down_since);
  }
  for (const j of st.jobs || []) {
    if (j.last_error) add('job ' + j.name, j.last_error, j.last_change);
    for (const t of j.targets || []) {
      if (t.state === 'bad' || t.state === 'error') add('job ' + j.name + ' → ' + t.name, t.reason || t.state);
    }
    for (const g of (state.histories[j.name] || []).filter((g) => g.state === 'bad').slice(-3)) {
      add('job ' + j.name + ' generation ' + g.generation, g.reason || 'bad', g.time);
    }
  }
  const seen = new Set();
  // one line per message: a target's rejection shows on the job, the
  // target and the generation alike
  const list = items.filter((i) => { if (seen.has(i.what)) return false; seen.add(i.what); return true; });
  const el = document.getElementById('errors');
  if (!list.length) { el.replaceChildren(h('p', {class: 'muted'}, 'No errors.')); return; }
  el.replaceChildren(h('ul', {class: 'errors card'}, list.map((i) =>
    h('li', {}, h('span', {class: 'where'}, i.where), ': ', h('span', {class: 'error-text'}, i.what), i.t ? h('span', {class: 'muted'}, ' (' + ago(i.t) + ')') : ''))));
}

// ---- jobs ----

function progressView(p) {
  if (!p) return null;
  if (p.phase === 'scanning') {
    // a source reading its tree: no total before its walk ends (a bar without a value moves on its own)
    return h('span', {class: 'progress'}, h('progress', {}), ' scanning for a new generation: ' + p.files + ' files read and stored, ' + bytes(p.bytes) + ' so far');
  }
  const what = p.offered ? 'fetching what the source offers for its first generation' : p.phase + ' generation ' + p.generation;
  const parts = [what + ': ' + p.files + '/' + p.files_total + ' files, ' + bytes(p.bytes) + '/' + bytes(p.bytes_total)];
  if (p.eta_s >= 0) parts.push('about ' + duration(p.eta_s) + ' left');
  else if (p.offered) parts.push('the source still scans and offers more');
  // by bytes while bytes are left, then by files (an apply's renames)
  const byBytes = p.bytes_total > 0 && p.bytes < p.bytes_total;
  return h('span', {class: 'progress'}, h('progress', {max: (byBytes ? p.bytes_total : p.files_total) || 1, value: byBytes ? p.bytes : p.files}), ' ', parts.join(', '));
}

function targetsTable(j) {
  if (!j.targets || !j.targets.length) return null;
  return h('div', {class: 'table-wrap'}, h('table', {},
    h('thead', {}, h('tr', {}, ['Target', 'Has', 'Its generation', 'State', 'Behind', 'Reason / progress'].map((t) => h('th', {}, t)))),
    h('tbody', {}, j.targets.map((t) => h('tr', {class: t.state === 'bad' ? 'bad' : '', 'data-target': t.name},
      h('td', {}, h('strong', {}, t.name), t.via ? ' via ' + t.via : ''),
      h('td', {class: 'num'}, t.version),
      h('td', {class: 'num'}, t.generation),
      h('td', {}, badge(t.slow ? 'slow' : t.state)),
      h('td', {class: 'num'}, t.lag),
      h('td', {class: 'wide'}, t.progress ? progressView(t.progress) : (t.reason || '')))))));
}

function historyTable(j) {
  const gens = state.histories[j.name];
  if (!gens) return h('p', {class: 'muted'}, 'Loading history…');
  if (!gens.length) return h('p', {class: 'muted'}, 'No generations yet.');
  const pick = state.pick[j.name] || (state.pick[j.name] = {});
  const newest = gens[gens.length - 1].generation;
  if (!pick.to) pick.to = newest;
  if (!pick.from) pick.from = gens.length > 1 ? gens[gens.length - 2].generation : newest;
  const rows = gens.slice().reverse().map((g) => {
    const current = g.generation === j.generation;
    let btn = null;
    if (g.state === 'good' && !current) {
      if (j.role === 'source') {
        btn = actionButton('rb:' + j.name + ':' + g.generation, 'Roll back to ' + g.generation, 'Confirm: roll back the farm to ' + g.generation,
          () => act(j.name, 'rollback', {generation: g.generation}, 'Rollback of ' + j.name + ' to generation ' + g.generation),
          {action: 'rollback', job: j.name, gen: g.generation, title: 'restore generation ' + g.generation + ' here; it goes to every target as a new generation'});
      } else {
        btn = actionButton('hold:' + j.name + ':' + g.generation, 'Hold at ' + g.generation, 'Confirm: roll back and hold at ' + g.generation,
          () => act(j.name, 'rollback', {generation: g.generation, hold: true}, 'Rollback of ' + j.name + ' to generation ' + g.generation + ' (held)'),
          {action: 'rollback', job: j.name, gen: g.generation, title: 'roll this target back and hold it there until resume'});
      }
    }
    const changed = g.changed || [];
    const radio = (side) => h('input', {type: 'radio', name: 'diff-' + side + '-' + j.name, 'aria-label': side + ' ' + g.generation,
      checked: pick[side] === g.generation, onchange: () => { pick[side] = g.generation; }});
    return h('tr', {class: (g.state === 'bad' ? 'bad ' : '') + (current ? 'current' : ''), 'data-gen': g.generation, 'data-state': g.state},
      h('td', {}, radio('from'), ' ', radio('to')),
      h('td', {class: 'num'}, h('strong', {}, g.generation)),
      h('td', {}, badge(g.state)),
      h('td', {}, when(g.time)),
      h('td', {}, g.origin),
      h('td', {class: 'wide'}, changed.slice(0, 3).join(', ') + (changed.length > 3 ? ' +' + (changed.length - 3) + ' more' : '')),
      h('td', {class: 'wide reason' + (g.state === 'bad' ? ' error-text' : '')}, g.reason || ''),
      h('td', {}, btn));
  });
  return h('div', {},
    h('div', {class: 'table-wrap'}, h('table', {class: 'history'},
      h('thead', {}, h('tr', {}, ['From / to', 'Gen', 'State', 'Time', 'Origin', 'Changed', 'Reason', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, rows))),
    h('p', {class: 'actions'}, h('button', {type: 'button', class: 'small', 'data-action': 'diff', 'data-job': j.name,
      onclick: () => loadDiff(j.name)}, 'Compare the two generations picked'),
    h('span', {class: 'muted'}, state.token ? 'with file content' : 'paths only (the token shows content)')),
    diffView(j.name));
}

async function loadDiff(job) {
  const pick = state.pick[job] || {};
  const content = !!state.token;
  state.diffs[job] = {from: pick.from, to: pick.to, loading: true};
  renderJobs();
  try {
    const changes = await getJSON('api/v1/jobs/' + encodeURIComponent(job) + '/diff?from=' + pick.from + '&to=' + pick.to + (content ? '&content=1' : ''), content);
    state.diffs[job] = {from: pick.from, to: pick.to, changes, content};
  } catch (e) {
    state.diffs[job] = {from: pick.from, to: pick.to, error: e.message};
  }
  renderJobs();
}

function diffView(job) {
  const d = state.diffs[job];
  if (!d) return null;
  const head = h('h3', {}, 'Generation ' + d.from + ' → ' + d.to);
  if (d.loading) return h('div', {class: 'diff'}, head, h('p', {class: 'muted'}, 'Loading…'));
  if (d.error) return h('div', {class: 'diff'}, head, h('p', {class: 'error-text'}, d.error));
  if (!d.changes.length) return h('div', {class: 'diff'}, head, h('p', {class: 'muted'}, 'The two generations hold the same tree.'));
  return h('div', {class: 'diff', 'data-diff': job}, head, d.changes.map((c) => {
    const what = c.kind === 'added' ? c.to : c.kind === 'removed' ? c.from : c.from + ' → ' + c.to;
    let body = null;
    if (c.diff) {
      body = h('pre', {}, c.diff.replace(/\n$/, '').split('\n').map((line) => {
        const cls = line.startsWith('@@') ? 'hunk' : line.startsWith('+') && !line.startsWith('+++') ? 'add'
          : line.startsWith('-') && !line.startsWith('---') ? 'del' : '';
        return h('span', {class: cls}, line);
      }));
    } else if (c.skipped) {
      body = h('p', {class: 'muted'}, 'Content not shown: ' + c.skipped);
    }
    return h('div', {class: 'change'}, h('div', {class: 'change-head'}, badge(c.kind, c.kind === 'removed' ? 'bad' : c.kind === 'added' ? 'good' : ''), ' ', h('strong', {}, c.path), ' ', h('span', {class: 'muted'}, what)), body);
  }));
}

// conflictsView lists a mesh job's conflict records: read-only (the
// losing content stays in the store; `pbxsync conflicts --get ID` writes
// it out on the node).
// prev is how the reader left the panel ({open, shown}): it stays so until
// the records change; new ones open it.
function conflictsView(j, prev) {
  if (j.mode !== 'mesh') return null;
  const cs = state.conflicts[j.name];
  const shown = cs ? String(cs.length) : '';
  let body;
  if (!cs) body = h('p', {class: 'muted'}, 'Loading conflicts…');
  else if (!cs.length) body = h('p', {class: 'muted'}, 'No conflicts: no two members changed the same item concurrently.');
  else {
    const side = (s, gen) => [h('strong', {}, s.node), s.deleted ? ' (delete)' : '', gen && s.generation ? h('span', {class: 'muted'}, ' gen ' + s.generation) : ''];
    body = h('div', {},
      h('div', {class: 'table-wrap'}, h('table', {class: 'conflicts'},
        h('thead', {}, h('tr', {}, ['Time', 'Path', 'Winner (live)', 'Loser (kept)', 'Reason', 'ID'].map((t) => h('th', {}, t)))),
        h('tbody', {}, cs.slice().reverse().map((c) => h('tr', {'data-conflict': c.id, class: c.reason ? 'bad' : ''},
          h('td', {}, when(c.time)),
          h('td', {class: 'wide'}, h('strong', {}, c.path)),
          h('td', {title: c.winner.hash || ''}, side(c.winner, true)),
          h('td', {title: c.loser.hash || ''}, side(c.loser, false)),
          h('td', {class: 'wide' + (c.reason ? ' error-text' : '')}, c.reason || 'concurrent versions'),
          h('td', {}, h('code', {}, c.id))))))),
      h('p', {class: 'muted'}, 'The losing versions are kept in this node\'s store: pbxsync conflicts --job ' + j.name + ' --get ID writes one out.'));
  }
  const open = prev && prev.shown === shown ? prev.open : !!(cs && cs.length);
  return h('details', {'data-conflicts': j.name, 'data-shown': shown, open},
    h('summary', {}, 'Conflicts (' + (cs ? cs.length : j.conflicts || 0) + ')'), body);
}

function renderJobs() {
  const st = state.status;
  if (!st) return;
  const el = document.getElementById('jobs');
  if (!st.jobs || !st.jobs.length) { el.replaceChildren(h('p', {class: 'muted'}, 'This node has no jobs.')); return; }
  // keep the open/closed state of each history
  const open = {};
  for (const d of el.querySelectorAll('details[data-job]')) open[d.dataset.job] = d.open;
  const openConflicts = {};
  for (const d of el.querySelectorAll('details[data-conflicts]')) openConflicts[d.dataset.conflicts] = {open: d.open, shown: d.dataset.shown};
  el.replaceChildren(...st.jobs.map((j) => {
    const held = j.held ? badge('held', 'held') : null;
    const actions = h('div', {class: 'actions'},
      actionButton('sync:' + j.name, 'Sync now', '', () => act(j.name, 'sync', {}, 'Sync now of ' + j.name),
        {action: 'sync', job: j.name, title: 'rescan the tree now and announce the newest generation'}),
      j.held ? actionButton('resume:' + j.name, 'Resume', '', () => act(j.name, 'resume', {}, 'Resume of ' + j.name),
        {action: 'resume', job: j.name, title: 'end the hold: take the source\'s generations again'}) : null);
    const role = j.mode === 'mesh' ? 'mesh member' : j.role === 'source' ? 'source of ' + (j.targets || []).length + ' reporting target(s)' : 'target of ' + (j.source || '?');
    const meta = [j.type, role, j.path]
      .filter(Boolean).join(' · ');
    const details = h('details', {'data-job': j.name, open: open[j.name] !== undefined ? open[j.name] : true},
      h('summary', {}, 'History and diff'), historyTable(j));
    return h('article', {class: 'card job', id: 'job-' + j.name, 'data-job': j.name},
      h('div', {class: 'card-head'},
        h('div', {class: 'title'}, h('h3', {}, j.name), badge(j.role, 'role'), badge(j.state), held,
          h('span', {class: 'generation'}, 'generation ', h('strong', {}, j.generation))),
        actions),
      h('p', {class: 'meta'}, meta),
      j.held ? h('p', {class: 'meta'}, j.held) : null,
      j.last_error ? h('p', {class: 'error-text last-error'}, j.last_error) : null,
      j.rollout ? h('p', {class: 'rollout'}, j.rollout) : null,
      j.progress ? h('p', {}, progressView(j.progress)) : null,
      h('p', {class: 'meta'}, 'sent ' + bytes(j.bytes_sent) + ' (' + bytes(j.logical_bytes_sent) + ' of content) · received ' + bytes(j.bytes_received) +
        ' · applied ' + j.applied + ' · rolled back ' + j.rolled_back + (j.last_change ? ' · last change ' + ago(j.last_change) : '')),
      (j.refused && j.refused.length) ? h('p', {class: 'meta'}, 'not synced: ' + j.refused.slice(0, 5).join('; ')) : null,
      (j.unreadable && j.unreadable.length) ? h('p', {class: 'error-text'}, 'unreadable: ' + j.unreadable.slice(0, 5).join('; ')) : null,
      targetsTable(j),
      conflictsView(j, openConflicts[j.name]),
      details);
  }));
}

// fetchChanged fetches api/v1/jobs/{job}/{what} into into[job] for each
// of jobs whose key (keyOf) changed since it was last fetched (keys[job]);
// it reports whether it fetched any.
async function fetchChanged(jobs, what, keys, into, keyOf) {
  let fetched = false;
  await Promise.all(jobs.map(async (j) => {
    const key = keyOf(j);
    if (keys[j.name] === key) return;
    keys[j.name] = key;
    fetched = true;
    try {
      into[j.name] = await getJSON('api/v1/jobs/' + encodeURIComponent(j.name) + '/' + what);
    } catch (e) {
      keys[j.name] = '';
      flash(what + ' of ' + j.name + ': ' + e.message, 'error');
    }
  }));
  return fetched;
}

// refreshHistories fetches the history of each job whose generation,
// state or targets changed since it was last fetched.
async function refreshHistories() {
  const st = state.status;
  if (!st) return;
  const key = (j) => [j.generation, j.state, j.last_error, (j.targets || []).map((t) => t.name + t.version + t.state).join()].join('|');
  if (await fetchChanged(st.jobs || [], 'history', state.historyKey, state.histories, key)) {
    renderJobs();
    renderErrors();
  }
}

// refreshConflicts fetches the conflict records of each mesh job whose
// count changed since they were last fetched.
async function refreshConflicts() {
  const st = state.status;
  if (!st) return;
  const mesh = (st.jobs || []).filter((j) => j.mode === 'mesh');
  if (await fetchChanged(mesh, 'conflicts', state.conflictsKey, state.conflicts, (j) => String(j.conflicts || 0))) renderJobs();
}

function renderAll() {
  renderFarm();
  renderErrors();
  renderJobs();
}

// ---- live updates ----

function setLive(on) {
  const el = document.getElementById('live');
  el.textContent = on ? 'live' : 'reconnecting…';
  el.className = 'live ' + (on ? 'on' : 'off');
}

function connect() {
  const es = new EventSource('api/v1/events');
  es.addEventListener('open', () => setLive(true));
  es.addEventListener('error', () => setLive(false));
  let lastJobs = '';
  es.addEventListener('status', (e) => {
    setLive(true);
    state.status = JSON.parse(e.data);
    renderFarm();
    renderErrors();
    // the jobs' cards are rebuilt only when a job changed (peers' RTT and
    // last-seen move every second): a selection in a diff stays put
    const jobs = JSON.stringify(state.status.jobs);
    if (jobs !== lastJobs) {
      lastJobs = jobs;
      renderJobs();
    }
    refreshHistories();
    refreshConflicts();
  });
  es.addEventListener('node', (e) => {
    state.node = JSON.parse(e.data);
    renderFarm();
    renderErrors();
  });
}

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('token-form').addEventListener('submit', useToken);
  document.getElementById('token-forget').addEventListener('click', forgetToken);
  document.getElementById('flash').addEventListener('click', (e) => { e.currentTarget.hidden = true; });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && state.confirm) { state.confirm = ''; renderJobs(); }
  });
  renderMode();
  getJSON('api/v1/status').then((s) => { if (!state.status) { state.status = s; renderAll(); refreshHistories(); refreshConflicts(); } }).catch((e) => flash(e.message, 'error'));
  connect();
  // relative times ("3 s ago") move on without new data
  setInterval(() => { if (state.status) { renderFarm(); } }, 5000);
});
