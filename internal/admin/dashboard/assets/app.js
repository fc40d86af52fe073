// sesgate admin dashboard. Everything goes through the admin API with the
// token from sessionStorage; values are written with textContent only.
'use strict';
(function () {
  const KEY = 'sesgate-admin-token';
  const REFRESH_MS = 10000;
  const SVG = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);
  let timer = null;

  function token() { return sessionStorage.getItem(KEY) || ''; }

  class Unauthorized extends Error {}

  async function api(method, path, body) {
    const opts = { method: method, headers: { Authorization: 'Bearer ' + token() }, cache: 'no-store' };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    let data = {};
    try { data = await r.json(); } catch (e) { /* empty or not JSON */ }
    if (r.status === 401) throw new Unauthorized('The admin token was refused.');
    if (!r.ok) {
      const e = new Error((data.error && data.error.message) || (r.status + ' ' + r.statusText));
      e.status = r.status;
      throw e;
    }
    return data;
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function pct(x) { return (100 * x).toFixed(2) + ' %'; }

  // spark draws values (oldest first) as a polyline scaled to max(values, floor).
  function spark(values, cls, floor, label) {
    const w = 96, h = 28;
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', 'spark');
    svg.setAttribute('width', w);
    svg.setAttribute('height', h);
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    svg.setAttribute('role', 'img');
    const top = Math.max(floor, ...values);
    const base = document.createElementNS(SVG, 'line');
    base.setAttribute('x1', 0); base.setAttribute('x2', w);
    base.setAttribute('y1', h - 1); base.setAttribute('y2', h - 1);
    svg.appendChild(base);
    const pts = values.map((v, i) => {
      const x = values.length > 1 ? (i * (w - 2)) / (values.length - 1) + 1 : w / 2;
      const y = h - 2 - (top > 0 ? (v / top) * (h - 4) : 0);
      return x.toFixed(1) + ',' + y.toFixed(1);
    });
    const line = document.createElementNS(SVG, 'polyline');
    line.setAttribute('class', cls);
    line.setAttribute('points', pts.join(' '));
    svg.appendChild(line);
    const title = document.createElementNS(SVG, 'title');
    title.textContent = label;
    svg.appendChild(title);
    return svg;
  }

  // charts returns the three cells' contents: a sparkline over the last
  // hour and the tenant's rate over the backend's window beside it.
  function charts(points, rates) {
    const sent = points.map((p) => p.sent);
    const rate = (k) => points.map((p) => (p.sent > 0 ? p[k] / p.sent : 0));
    const last = (a) => (a.length ? a[a.length - 1] : 0);
    const total = sent.reduce((a, b) => a + b, 0);
    const b = rate('bounces'), c = rate('complaints');
    const cell = (svg, text) => {
      const d = el('div', { class: 'chart' });
      d.appendChild(svg);
      d.appendChild(el('span', { class: 'value' }, text));
      return d;
    };
    return [
      cell(spark(sent, 'sent', 1, total + ' sent in the last hour; ' + last(sent) + ' in the last minute'),
        rates.sent_per_minute.toFixed(1) + '/min'),
      cell(spark(b, 'bounce', 0.05, 'bounce rate per minute; last ' + pct(last(b))), pct(rates.bounce_rate)),
      cell(spark(c, 'complaint', 0.001, 'complaint rate per minute; last ' + pct(last(c))), pct(rates.complaint_rate)),
    ];
  }

  function button(text, cls, onClick) {
    const b = el('button', { type: 'button', class: cls }, text);
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        await onClick();
        $('message').textContent = '';
      } catch (e) {
        handle(e);
      } finally {
        b.disabled = false;
        refresh();
      }
    });
    return b;
  }

  function tenantRow(t, points) {
    const tr = el('tr', { 'data-tenant': t.id });
    tr.appendChild(el('td', { class: 'id' }, t.id));
    const bk = el('td');
    bk.appendChild(el('span', { class: 'badge breaker ' + t.breaker }, t.breaker.replace('_', '-')));
    tr.appendChild(bk);
    const fz = el('td');
    fz.appendChild(el('span', { class: 'badge state ' + (t.freeze.frozen ? 'frozen' : 'sending') }, t.freeze.frozen ? 'frozen' : 'sending'));
    if (t.freeze.frozen && t.freeze.reason) fz.appendChild(el('span', { class: 'muted' }, ' ' + t.freeze.reason));
    tr.appendChild(fz);
    const lim = (n) => (n > 0 ? ' of ' + n : '');
    tr.appendChild(el('td', { class: 'usage' }, t.usage.hour + lim(t.limits.per_hour) + ' · ' + t.usage.day + lim(t.limits.per_day)));
    const w = t.first_contact_window;
    tr.appendChild(el('td', { class: 'window' }, !w ? '–' : !w.active ? 'off: no Delivery events'
      : w.outstanding + ' of ' + Math.floor(w.window) + ' out · ' + w.held + ' held' + (w.no_deliveries ? ' · no deliveries seen' : '')));
    for (const chart of charts(points, t.rates)) {
      const td = el('td');
      td.appendChild(chart);
      tr.appendChild(td);
    }
    const act = el('td', { class: 'actions' });
    if (t.freeze.frozen) {
      act.appendChild(button('Unfreeze', 'unfreeze', () => api('POST', '/v1/tenants/' + encodeURIComponent(t.id) + '/unfreeze')));
    } else {
      act.appendChild(button('Freeze', 'freeze danger', () => api('POST', '/v1/tenants/' + encodeURIComponent(t.id) + '/freeze', { reason: 'frozen from the dashboard' })));
    }
    act.appendChild(button('Reset breaker', 'reset', () => api('POST', '/v1/breakers/' + encodeURIComponent(t.id) + '/reset')));
    tr.appendChild(act);
    return tr;
  }

  function fmtTime(s) {
    const d = new Date(s);
    return isNaN(d) ? s : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }

  // optional is null when the server has no such route (no webhook queue).
  function optional(p) {
    return p.catch((e) => { if (e.status === 404) return null; throw e; });
  }

  function age(secs) {
    if (secs < 120) return secs + ' s';
    if (secs < 7200) return Math.floor(secs / 60) + ' min';
    if (secs < 172800) return Math.floor(secs / 3600) + ' h';
    return Math.floor(secs / 86400) + ' d';
  }

  function cells(tr, values) {
    for (const [text, cls] of values) tr.appendChild(el('td', cls ? { class: cls } : {}, text));
  }

  function healthBadge(h, backlog) {
    const td = el('td', { class: 'health' });
    td.appendChild(el('span', { class: 'badge ' + h }, h === 'backlog' ? 'backlog ' + backlog : h));
    return td;
  }

  function hookRows(t) {
    const tr = el('tr', { 'data-tenant': t.tenant, class: 'tenant' });
    tr.appendChild(el('td', { class: 'id' }, t.tenant));
    tr.appendChild(healthBadge(t.health, t.backlog));
    cells(tr, [[String(t.backlog), 'num backlog'], [t.oldest ? age(t.oldest_age_seconds) : '–', 'num oldest'],
      [String(t.delivered_24h), 'num delivered'], [String(t.failed_24h), 'num failed'], [String(t.dead_24h), 'num dead'],
      [String(t.dead_letters), 'num dead-letters'], ['', 'err']]);
    const rows = [tr];
    for (const w of t.webhooks) {
      const r = el('tr', { 'data-tenant': t.tenant, 'data-url': w.url, class: 'hook' });
      r.appendChild(el('td', {}, w.url));
      r.appendChild(healthBadge(w.health, 0));
      cells(r, [['', 'num'], ['', 'num'], [String(w.delivered_24h), 'num delivered'], [String(w.failed_24h), 'num failed'],
        [String(w.dead_24h), 'num dead'], ['', 'num'],
        [w.last_error ? w.last_error + ' (' + fmtTime(w.last_failed) + ')' : '', 'err']]);
      rows.push(r);
    }
    return rows;
  }

  function deadRow(d) {
    const tr = el('tr', { 'data-id': d.id });
    cells(tr, [[d.id, 'id'], [d.tenant], [d.type], [d.url], [fmtTime(d.died)], [String(d.attempts), 'num'], [d.last_error, 'err']]);
    const act = el('td', { class: 'actions' });
    act.appendChild(button('Replay', 'replay', async () => {
      if (!window.confirm('Replay event ' + d.id + ' (' + d.type + ') to ' + d.url + ' for tenant ' + d.tenant + '?')) return;
      await api('POST', '/v1/webhooks/dead/' + encodeURIComponent(d.id) + '/replay', {});
    }));
    tr.appendChild(act);
    return tr;
  }

  function emptyRow(cols, text) {
    const tr = el('tr');
    tr.appendChild(el('td', { colspan: cols, class: 'muted' }, text));
    return tr;
  }

  function renderHooks(health, dead) {
    $('webhooks').hidden = !health;
    if (!health) return;
    $('webhooks-window').textContent = '(counts: last ' + health.window_hours + ' h)';
    const shown = health.tenants.filter((t) => t.health !== 'none' || t.dead_letters > 0);
    $('hooks').tBodies[0].replaceChildren(...(shown.length ? shown.flatMap(hookRows) : [emptyRow(9, 'no webhook activity')]));
    const list = (dead && dead.dead) || [];
    $('dead').tBodies[0].replaceChildren(...(list.length ? list.map(deadRow) : [emptyRow(8, 'none')]));
  }

  async function refresh() {
    if (!token()) return showLogin('');
    try {
      const [tenants, breakers, health, dead] = await Promise.all([api('GET', '/v1/tenants'), api('GET', '/v1/breakers'),
        optional(api('GET', '/v1/webhooks/health')), optional(api('GET', '/v1/webhooks/dead?limit=100'))]);
      const series = await Promise.all(tenants.tenants.map((t) =>
        api('GET', '/v1/tenants/' + encodeURIComponent(t.id) + '/series').then((s) => s.points, () => [])));
      render(tenants, breakers.breakers, series);
      renderHooks(health, dead);
      showMain();
      $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    } catch (e) {
      handle(e);
    }
  }

  function render(tenants, breakers, series) {
    const g = tenants.global_freeze;
    $('global').className = 'banner' + (g.frozen ? ' frozen' : '');
    $('global-state').textContent = g.frozen ? 'All sending is frozen' : 'Sending is on';
    $('global-reason').textContent = g.frozen && g.reason ? g.reason + ' (' + (g.by || '?') + ', ' + fmtTime(g.at) + ')' : '';
    $('freeze-all').hidden = g.frozen;
    $('unfreeze-all').hidden = !g.frozen;

    const body = $('tenants').tBodies[0];
    body.replaceChildren(...tenants.tenants.map((t, i) => tenantRow(t, series[i] || [])));

    const frozen = tenants.tenants.filter((t) => t.freeze.frozen);
    $('frozen').replaceChildren(...(frozen.length ? frozen.map((t) =>
      el('li', {}, t.id + (t.freeze.reason ? ': ' + t.freeze.reason : '') + ' (' + (t.freeze.by || '?') + ', ' + fmtTime(t.freeze.at) + ')'))
      : [el('li', { class: 'muted' }, 'none')]));

    const trips = [];
    for (const b of breakers) for (const tr of b.trips || []) trips.push({ tenant: b.tenant, at: tr.at, reason: tr.reason });
    trips.sort((a, b) => (a.at < b.at ? 1 : -1));
    $('trips').replaceChildren(...(trips.length ? trips.slice(0, 20).map((t) =>
      el('li', {}, fmtTime(t.at) + '  ' + t.tenant + ': ' + t.reason))
      : [el('li', { class: 'muted' }, 'none')]));
  }

  function handle(e) {
    if (e instanceof Unauthorized) {
      sessionStorage.removeItem(KEY);
      showLogin(e.message);
      return;
    }
    $('message').textContent = e.message;
  }

  function showLogin(msg) {
    clearInterval(timer);
    timer = null;
    $('main').hidden = true;
    $('signout').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = msg;
    $('tenants').tBodies[0].replaceChildren();
    $('webhooks').hidden = true;
    $('hooks').tBodies[0].replaceChildren();
    $('dead').tBodies[0].replaceChildren();
  }

  function showMain() {
    $('login').hidden = true;
    $('main').hidden = false;
    $('signout').hidden = false;
    if (!timer) timer = setInterval(refresh, REFRESH_MS);
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const t = $('token').value.trim();
      $('token').value = '';
      if (!t) return;
      sessionStorage.setItem(KEY, t);
      refresh();
    });
    $('signout').addEventListener('click', () => {
      sessionStorage.removeItem(KEY);
      showLogin('');
    });
    $('freeze-all').addEventListener('click', () =>
      api('POST', '/v1/freeze', { reason: 'frozen from the dashboard' }).catch(handle).finally(refresh));
    $('unfreeze-all').addEventListener('click', () =>
      api('POST', '/v1/unfreeze').catch(handle).finally(refresh));
    refresh();
  });
})();
