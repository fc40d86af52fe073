// sesgate admin dashboard. Everything goes through the admin API with the
// token from sessionStorage; values are written with textContent only.
// Charts: uPlot (vendor/, embedded), drawn on canvas.
'use strict';
(function () {
  const KEY = 'sesgate-admin-token';
  const REFRESH_MS = 10000;
  const FEED_SHOWN = 40; // the feed asks for what it shows
  const SVG = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);
  let timer = null;
  let last = null; // the last data read, for re-sorting and the tenant page
  const plots = {}; // chart element id -> uPlot
  const cspViolations = [];

  function token() { return sessionStorage.getItem(KEY) || ''; }

  // The charts' span (1h, 3h or 6h), chosen in the header.
  function chosenSpan() { return ($('span') && $('span').value) || '1h'; }
  function spanText() { return chosenSpan().replace('h', ' h'); }

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
  function num(n) { return Number(n).toLocaleString('en-US'); }
  const enc = encodeURIComponent;

  // --- series ---

  // perMinute returns the rates of the points (by send minute; null where
  // nothing was sent) and the last-5-minute send rate.
  function summarize(points) {
    const sent = points.map((p) => p.sent);
    const rate = (k) => points.map((p) => (p.sent > 0 ? p[k] / p.sent : null));
    const total = sent.reduce((a, b) => a + b, 0);
    const last5 = sent.slice(-5).reduce((a, b) => a + b, 0) / 5;
    const sum = (k) => points.reduce((x, p) => x + p[k], 0);
    // The hour's rates by send minute: unlike the breaker's window, not
    // restarted by a trip or a reset.
    return { sent: sent, bounce: rate('bounces'), complaint: rate('complaints'), total: total, perMin5: last5,
      hourBounce: total > 0 ? sum('bounces') / total : 0, hourComplaint: total > 0 ? sum('complaints') / total : 0 };
  }

  // spark draws values (oldest first) as a polyline scaled to max(values, floor).
  function spark(values, cls, floor, label) {
    const w = 96, h = 28;
    values = values.map((v) => v || 0);
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

  function sparkCell(svg, text, cls) {
    const td = el('td', cls ? { class: cls } : {});
    const d = el('div', { class: 'chart' });
    d.appendChild(svg);
    d.appendChild(el('span', { class: 'value' }, text));
    td.appendChild(d);
    return td;
  }

  // --- charts (uPlot) ---

  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  // chart draws series on the element id: xs in unix seconds, lines
  // [{label, values, color, dash, fmt}]. The element's data-* attributes
  // carry the figures drawn (for tests and screen readers).
  function chart(id, xs, lines, yfmt) {
    const box = $(id);
    if (!box || !window.uPlot) return;
    const width = Math.max(240, box.clientWidth || 600);
    const fg = cssVar('--fg'), grid = cssVar('--line');
    const opts = {
      width: width, height: 190,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(max, 1e-9) * 1.1] } },
      axes: [
        { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 64, values: (u, vals) => vals.map(yfmt) },
      ],
      series: [{}].concat(lines.map((l) => ({
        label: l.label, stroke: l.color, width: l.width || 1.5, dash: l.dash, points: { show: false }, spanGaps: false,
        value: (u, v) => (v == null ? '–' : yfmt(v)),
      }))),
    };
    const data = [xs].concat(lines.map((l) => l.values));
    if (plots[id]) plots[id].destroy();
    box.replaceChildren();
    plots[id] = new window.uPlot(opts, data, box);
    const vals = lines[0].values.filter((v) => v != null);
    box.dataset.points = String(xs.length);
    box.dataset.max = vals.length ? String(Math.max(...vals)) : '0';
    box.dataset.series = lines.map((l) => l.label).join('|');
  }

  function constant(xs, v) { return xs.map(() => v); }

  function rateLines(xs, s, lines, guardLabel) {
    const red = cssVar('--bad'), warn = cssVar('--warn'), blue = cssVar('--accent'), muted = cssVar('--muted');
    const b = [{ label: 'bounce rate', values: s.bounce, color: warn, width: 2 }];
    const c = [{ label: 'complaint rate', values: s.complaint, color: red, width: 2 }];
    if (lines.ses_bounce_review) {
      b.push({ label: 'SES review', values: constant(xs, lines.ses_bounce_review), color: muted, dash: [6, 4] });
      b.push({ label: 'SES pause', values: constant(xs, lines.ses_bounce_pause), color: red, dash: [6, 4] });
      c.push({ label: 'SES review', values: constant(xs, lines.ses_complaint_review), color: muted, dash: [6, 4] });
      c.push({ label: 'SES pause', values: constant(xs, lines.ses_complaint_pause), color: red, dash: [6, 4] });
    }
    if (lines.guard_bounce_warn) b.push({ label: guardLabel + ' warn', values: constant(xs, lines.guard_bounce_warn), color: blue, dash: [2, 3] });
    if (lines.guard_bounce_trip) b.push({ label: guardLabel + ' trip', values: constant(xs, lines.guard_bounce_trip), color: blue, dash: [2, 3], width: 2 });
    if (lines.guard_complaint_warn) c.push({ label: guardLabel + ' warn', values: constant(xs, lines.guard_complaint_warn), color: blue, dash: [2, 3] });
    if (lines.guard_complaint_trip) c.push({ label: guardLabel + ' trip', values: constant(xs, lines.guard_complaint_trip), color: blue, dash: [2, 3], width: 2 });
    return { bounce: b, complaint: c };
  }

  const xsOf = (points) => points.map((p) => Math.floor(new Date(p.at).getTime() / 1000));
  const pfmt = (v) => (100 * v).toFixed(v < 0.01 ? 2 : 1) + '%';

  // --- the account ---

  function renderAccount(a) {
    const s = summarize(a.points);
    const xs = xsOf(a.points);
    const g = a.guard;
    $('acct-source').textContent = '(per send minute, summed over the ' + a.points_source + ')';
    const tb = a.points.reduce((x, p) => x + p.bounces, 0), tc = a.points.reduce((x, p) => x + p.complaints, 0);
    $('acct-window').textContent = '(last ' + spanText() + ')';
    $('acct-bounce').textContent = s.total > 0 ? pct(tb / s.total) : '–';
    $('acct-complaint').textContent = s.total > 0 ? pct(tc / s.total) : '–';
    if (g) {
      const badge = el('span', { class: 'badge breaker ' + g.state }, g.state.replace('_', '-') + (g.warning ? ' · warning' : ''));
      const since = el('span', { class: 'muted small' }, ' ' + pct(g.rates.bounce_rate) + ' over ' + g.rates.window +
        (g.trips && g.trips.length ? '; last trip ' + fmtTime(g.trips[0].at) + ': ' + g.trips[0].reason : ''));
      $('acct-guard').replaceChildren(badge, since);
    } else {
      $('acct-guard').textContent = 'not running';
    }
    $('acct-usage').textContent = num(a.usage.hour) + ' · ' + num(a.usage.day);
    const q = a.ses_quota;
    if (q) {
      $('acct-quota').textContent = (q.max_24_hour_send < 0 ? 'unlimited' : num(a.usage.day) + ' of ' + num(q.max_24_hour_send));
      $('acct-rate').textContent = q.max_send_rate + ' /s';
      $('acct-quota-note').textContent = 'SES quota read from GetAccount at ' + fmtTime(q.at) + ' (SES then counted ' + num(q.sent_last_24_hours) +
        ' in 24 h); used: sesgate\'s own count for the UTC day, all tenants.';
    } else {
      $('acct-quota').textContent = 'not read';
      $('acct-rate').textContent = '–';
      $('acct-quota-note').textContent = 'The SES quota was not read from SES (the outbox, or ses.max_send_rate set in the policy): the counts are sesgate\'s own.';
    }
    const rl = rateLines(xs, s, a.lines, 'guard');
    chart('chart-bounce', xs, rl.bounce, pfmt);
    chart('chart-complaint', xs, rl.complaint, pfmt);
  }

  // --- tenants ---

  const STATE_SCORE = { forced_open: 4000, open: 3000, half_open: 2000 };

  // worst scores a tenant: its breaker, its freeze, then its rates against
  // the breaker's trip lines (and SES's when the breaker has none).
  function worst(t, b, s) {
    let score = STATE_SCORE[t.breaker] || 0;
    if (t.freeze.frozen) score += 1000;
    if (b && b.warning) score += 500;
    const tb = (b && parseFloat(b.windows && b.windows.bounce_threshold)) || 0.05;
    const tc = (b && parseFloat(b.windows && b.windows.complaint_threshold)) || 0.001;
    const br = Math.max(t.rates.bounce_rate, s.hourBounce), cr = Math.max(t.rates.complaint_rate, s.hourComplaint);
    return score + 100 * Math.max(br / tb, cr / tc);
  }

  function button(text, cls, confirmText, onClick) {
    const b = el('button', { type: 'button', class: cls }, text);
    b.addEventListener('click', async () => {
      const q = typeof confirmText === 'function' ? confirmText() : confirmText;
      if (q && !window.confirm(q)) return;
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

  function tenantActions(t) {
    const out = [];
    const id = t.id;
    if (t.freeze.frozen) {
      out.push(button('Unfreeze', 'unfreeze', 'Unfreeze tenant ' + id + '? Its mail flows again.',
        () => api('POST', '/v1/tenants/' + enc(id) + '/unfreeze')));
    } else {
      out.push(button('Freeze', 'freeze danger', 'Freeze tenant ' + id + '? Its mail is refused until unfrozen.',
        () => api('POST', '/v1/tenants/' + enc(id) + '/freeze', { reason: 'frozen from the dashboard' })));
    }
    out.push(button('Reset breaker', 'reset', 'Reset the breaker of ' + id + '? It closes and forgets the counts that tripped it.',
      () => api('POST', '/v1/breakers/' + enc(id) + '/reset')));
    return out;
  }

  function refusedText(r) {
    if (!r) return '0';
    const parts = Object.keys(r).sort((a, b) => r[b] - r[a]).map((k) => r[k] + ' ' + k);
    return parts.length ? parts.join(', ') : '0';
  }

  function tenantRow(t, points, refused) {
    const s = summarize(points);
    const tr = el('tr', { 'data-tenant': t.id });
    const idc = el('td', { class: 'id' });
    idc.appendChild(el('a', { href: '#tenant/' + enc(t.id) }, t.id));
    tr.appendChild(idc);
    const bk = el('td');
    bk.appendChild(el('span', { class: 'badge breaker ' + t.breaker }, t.breaker.replace('_', '-')));
    tr.appendChild(bk);
    const fz = el('td');
    fz.appendChild(el('span', { class: 'badge state ' + (t.freeze.frozen ? 'frozen' : 'sending') }, t.freeze.frozen ? 'frozen' : 'sending'));
    if (t.freeze.frozen && t.freeze.reason) fz.appendChild(el('span', { class: 'muted' }, ' ' + t.freeze.reason));
    tr.appendChild(fz);
    const lim = (n) => (n > 0 ? ' of ' + n : '');
    tr.appendChild(el('td', { class: 'usage' }, t.usage.hour + lim(t.limits.per_hour) + ' · ' + t.usage.day + lim(t.limits.per_day)));
    tr.appendChild(el('td', { class: 'window' }, windowText(t)));
    tr.appendChild(sparkCell(spark(s.sent, 'sent', 1, s.total + ' sent in the last hour'), s.perMin5.toFixed(1) + '/min', 'sent'));
    tr.appendChild(sparkCell(spark(s.bounce, 'bounce', 0.05, 'bounce rate per send minute; breaker window ' + pct(t.rates.bounce_rate)), pct(s.hourBounce), 'bounce'));
    tr.appendChild(sparkCell(spark(s.complaint, 'complaint', 0.001, 'complaint rate per send minute; breaker window ' + pct(t.rates.complaint_rate)), pct(s.hourComplaint), 'complaint'));
    const rmin = last && last.refusals.minutes ? last.refusals.minutes[t.id] : null;
    if (rmin) {
      const total = rmin.reduce((a, b) => a + b, 0);
      tr.appendChild(sparkCell(spark(rmin, 'refused', 1, total + ' refused in the last hour, per minute'), refusedText(refused), 'refused'));
    } else {
      tr.appendChild(el('td', { class: 'refused' }, refusedText(refused)));
    }
    const act = el('td', { class: 'actions' });
    for (const b of tenantActions(t)) act.appendChild(b);
    tr.appendChild(act);
    return tr;
  }

  function windowText(t) {
    const w = t.first_contact_window;
    if (w) {
      return !w.active ? 'off: no Delivery events'
        : w.outstanding + ' of ' + Math.floor(w.window) + ' out · ' + w.held + ' held' + (w.no_deliveries ? ' · no deliveries seen' : '');
    }
    const l = t.limits, u = t.usage;
    const parts = [];
    if (l.first_contact_per_hour > 0) parts.push((l.first_contact_per_hour - u.first_contact_left_hour) + ' of ' + l.first_contact_per_hour + ' this hour');
    if (l.first_contact_per_day > 0) parts.push((l.first_contact_per_day - u.first_contact_left_day) + ' of ' + l.first_contact_per_day + ' today');
    return parts.length ? parts.join(' · ') : '–';
  }

  function sortTenants(d) {
    const by = $('sort').value;
    const idx = d.tenants.tenants.map((t, i) => i);
    const bmap = {};
    for (const b of d.breakers) bmap[b.tenant] = b;
    const score = idx.map((i) => worst(d.tenants.tenants[i], bmap[d.tenants.tenants[i].id], summarize(d.series[i] || [])));
    const sent = idx.map((i) => summarize(d.series[i] || []).total);
    const cmpId = (a, b) => (d.tenants.tenants[a].id < d.tenants.tenants[b].id ? -1 : 1);
    if (by === 'worst') idx.sort((a, b) => score[b] - score[a] || sent[b] - sent[a] || cmpId(a, b));
    else if (by === 'sent') idx.sort((a, b) => sent[b] - sent[a] || cmpId(a, b));
    else idx.sort(cmpId);
    return idx;
  }

  function renderTenants(d) {
    const body = $('tenants').tBodies[0];
    const ts = d.tenants.tenants;
    body.replaceChildren(...sortTenants(d).map((i) => tenantRow(ts[i], d.series[i] || [], d.refusals.tenants[ts[i].id])));
  }

  // --- the feed ---

  function feedItem(it) {
    const li = el('li', { class: 'lvl-' + it.level, 'data-kind': it.kind });
    li.appendChild(el('time', {}, fmtTime(it.at)));
    li.appendChild(el('span', { class: 'kind' }, it.kind));
    if (it.replica) li.appendChild(el('span', { class: 'replica muted' }, it.replica));
    if (it.tenant) {
      const a = el('a', { href: '#tenant/' + enc(it.tenant), class: 'tenant' }, it.tenant);
      li.appendChild(a);
    }
    li.appendChild(el('span', { class: 'text' }, it.text));
    return li;
  }

  function renderFeed(items) {
    $('feed').replaceChildren(...(items.length ? items.slice(0, FEED_SHOWN).map(feedItem) : [el('li', { class: 'muted' }, 'nothing yet')]));
  }

  // --- a message's journey ---

  function journeySteps(events) {
    return events.map((e) => {
      const li = el('li', { class: 'step ' + e.type, 'data-type': e.type });
      li.appendChild(el('strong', {}, e.type));
      li.appendChild(el('time', {}, ' ' + fmtTime(e.at)));
      const extra = [e.detail, (e.recipients || []).join(', ')].filter(Boolean).join(' · ');
      if (extra) li.appendChild(el('span', { class: 'muted' }, ' ' + extra));
      return li;
    });
  }

  function showJourney(j) {
    $('journey-id').textContent = j.id;
    $('journey-meta').textContent = 'tenant ' + j.tenant + (j.ses_message_id ? ' · SES ' + j.ses_message_id : '');
    $('journey-steps').replaceChildren(...journeySteps(j.events));
    $('journey').hidden = false;
  }

  // An address lists its messages (newest first) with their journeys;
  // anything else is a sesgate id or an SES MessageId.
  async function lookup(id) {
    $('lookup-error').textContent = '';
    $('journey').hidden = true;
    $('journeys').hidden = true;
    try {
      if (/^[^@\s]+@[^@\s]+$/.test(id) && !/@email\.amazonses\.com$/i.test(id)) {
        let r = null;
        try {
          r = await api('GET', '/v1/recipients/' + enc(id) + '/messages');
        } catch (e) {
          if (e.status !== 404) throw e; // no recipient index: the id route says why
        }
        if (r) {
          $('journeys-meta').textContent = r.messages.length + ' message' + (r.messages.length === 1 ? '' : 's') + ' to ' + r.address + ', newest first (' + r.kept + ')';
          $('journeys-list').replaceChildren(...r.messages.map((j) => {
            const li = el('li', { class: 'journey', 'data-id': j.id });
            const head = el('p');
            head.appendChild(el('strong', {}, j.id));
            head.appendChild(el('span', { class: 'muted' }, ' '));
            const a = el('a', { href: '#tenant/' + enc(j.tenant), class: 'tenant' }, j.tenant);
            head.appendChild(a);
            if (j.ses_message_id) head.appendChild(el('span', { class: 'muted' }, ' · SES ' + j.ses_message_id));
            li.appendChild(head);
            const ol = el('ol', { class: 'steps' });
            ol.replaceChildren(...journeySteps(j.events));
            li.appendChild(ol);
            return li;
          }));
          $('journeys').hidden = false;
          return;
        }
      }
      showJourney(await api('GET', '/v1/messages/' + enc(id)));
    } catch (e) {
      if (e instanceof Unauthorized) return handle(e);
      $('lookup-error').textContent = e.message;
    }
  }

  // --- the tenant page ---

  function currentTenant() {
    const m = location.hash.match(/^#tenant\/(.+)$/);
    return m ? decodeURIComponent(m[1]) : null;
  }

  async function renderTenantPage(d) {
    const id = currentTenant();
    $('overview').hidden = !!id;
    $('tenant-page').hidden = !id;
    if (!id) return;
    const i = d.tenants.tenants.findIndex((t) => t.id === id);
    if (i < 0) {
      $('message').textContent = 'No tenant ' + id;
      return;
    }
    const t = d.tenants.tenants[i];
    const b = d.breakers.find((x) => x.tenant === id);
    const sp = chosenSpan();
    const [ser, refs] = await Promise.all([
      sp === '1h' ? Promise.resolve({ points: d.series[i] || [] }) : api('GET', '/v1/tenants/' + enc(id) + '/series?span=' + sp),
      optional(api('GET', '/v1/tenants/' + enc(id) + '/refusals?span=' + sp))]);
    const pts = ser.points;
    const s = summarize(pts);
    const xs = xsOf(pts);
    $('t-id').textContent = id;
    $('t-breaker').className = 'badge breaker ' + t.breaker;
    $('t-breaker').textContent = 'breaker ' + t.breaker.replace('_', '-');
    $('t-state').className = 'badge state ' + (t.freeze.frozen ? 'frozen' : 'sending');
    $('t-state').textContent = t.freeze.frozen ? 'frozen' + (t.freeze.reason ? ': ' + t.freeze.reason : '') : 'sending';
    $('t-sent').textContent = s.perMin5.toFixed(1) + '/min';
    $('t-window').textContent = '(last ' + spanText() + '; breaker window ' + t.rates.window + ': ' + pct(t.rates.bounce_rate) + ')';
    document.querySelectorAll('.span-text').forEach((n) => { n.textContent = 'last ' + spanText(); });
    $('t-bounce').textContent = pct(s.hourBounce);
    $('t-complaint').textContent = pct(s.hourComplaint);
    const lim = (n) => (n > 0 ? ' of ' + num(n) : '');
    $('t-hour').textContent = num(t.usage.hour) + lim(t.limits.per_hour);
    $('t-day').textContent = num(t.usage.day) + lim(t.limits.per_day);
    $('t-window-use').textContent = windowText(t);
    chart('t-chart-sent', xs, [{ label: 'sent', values: s.sent, color: cssVar('--accent'), width: 2 }], (v) => String(Math.round(v)));
    const lines = {};
    if (b) {
      lines.guard_bounce_trip = parseFloat(b.windows.bounce_threshold) || 0;
      lines.guard_complaint_trip = parseFloat(b.windows.complaint_threshold) || 0;
    }
    const rl = rateLines(xs, s, lines, 'breaker');
    chart('t-chart-rates', xs, rl.bounce.concat(rl.complaint.slice(0, 1)), pfmt);
    renderTenantRefusals(refs);

    const acts = tenantActions(t);
    acts.push(button('Force open breaker', 'force-open danger', 'Force open the breaker of ' + id + '? Its mail is refused until a reset.',
      () => api('POST', '/v1/breakers/' + enc(id) + '/force-open', { reason: 'forced open from the dashboard' })));
    $('t-actions').replaceChildren(...acts);

    // The breaker's own timeline (trips, half-open probes and their
    // outcome, resets, forced opens; every replica's, from the store), the
    // audited actions on the tenant from the feed.
    const tl = [];
    if (b && b.timeline) {
      for (const x of b.timeline) tl.push({ at: x.at, kind: 'breaker.' + x.event, level: TL_LEVEL[x.event] || 'info', text: timelineText(x) });
    } else {
      for (const tr of (b && b.trips) || []) tl.push({ at: tr.at, kind: 'breaker.trip', level: 'error', text: tr.reason });
    }
    for (const it of d.feed.items) {
      if (it.tenant === id && it.kind.indexOf('breaker.') !== 0) tl.push(it);
      else if (it.tenant === id && (it.kind === 'breaker.reset' || it.kind === 'breaker.force_open')) tl.push(it); // audited: who did it
    }
    // Newest first; equal times keep the server's order (stable sort).
    tl.sort((x, y) => new Date(y.at) - new Date(x.at));
    $('t-timeline').replaceChildren(...(tl.length ? tl.map(feedItem) : [el('li', { class: 'muted' }, 'no trips, freezes or resets')]));

    const l = t.limits;
    const kv = [['rate', l.rate ? l.rate + ' /s' : 'unlimited'], ['per hour', l.per_hour || 'unlimited'], ['per day', l.per_day || 'unlimited'],
      ['first contacts per hour', l.first_contact_per_hour || '–'], ['first contacts per day', l.first_contact_per_day || '–'],
      ['max recipients', l.max_recipients || 'default'], ['breaker window', b ? b.windows.window + ' (min ' + b.windows.min_volume + ')' : '–'],
      ['refused (' + d.refusals.scope + ')', refusedText(d.refusals.tenants[id])]];
    $('t-limits').tBodies[0].replaceChildren(...kv.map(([k, v]) => {
      const tr = el('tr');
      tr.appendChild(el('th', {}, k));
      tr.appendChild(el('td', {}, String(v)));
      return tr;
    }));

    const [toks, supps] = await Promise.all([api('GET', '/v1/tokens?tenant=' + enc(id)),
      api('GET', '/v1/suppressions?tenant=' + enc(id) + '&limit=50')]);
    $('t-tokens').tBodies[0].replaceChildren(...toks.tokens.map((k) => {
      const tr = el('tr', { 'data-key': k.key_id });
      const revoked = !!k.revoked;
      cells(tr, [[k.key_id, 'id'], [fmtTime(k.created)], [k.last_used ? fmtTime(k.last_used) : '–'], [revoked ? 'revoked' : 'live', 'state']]);
      const act = el('td', { class: 'actions' });
      if (!revoked) {
        act.appendChild(button('Revoke', 'revoke danger', 'Revoke token ' + k.key_id + ' of ' + id + '? Mail sent with it is refused from now on.',
          () => api('POST', '/v1/tokens/' + enc(k.key_id) + '/revoke', {})));
      }
      tr.appendChild(act);
      return tr;
    }));
    $('t-supps').replaceChildren(...(supps.suppressions.length ? supps.suppressions.map((x) => {
      const li = el('li', { 'data-address': x.address }, x.address + ' (' + x.reason + ') ');
      li.appendChild(button('Remove', 'unsuppress', 'Remove ' + x.address + ' from the suppression list of ' + id + '?',
        () => api('DELETE', '/v1/suppressions?tenant=' + enc(id) + '&address=' + enc(x.address))));
      return li;
    }) : [el('li', { class: 'muted' }, 'none')]));
  }

  const TL_LEVEL = { trip: 'error', forced_open: 'error', probe_failed: 'error', warning: 'warn', half_open: 'warn', probe: 'info', probe_passed: 'info', reset: 'info' };

  function timelineText(x) {
    let s = (x.from && x.to && x.from !== x.to ? x.from.replace('_', '-') + ' → ' + x.to.replace('_', '-') + ': ' : '') + (x.reason || '');
    if (x.event === 'probe') s = (x.probe_sent || 0) + ' probe recipients sent, ' + (x.probe_bounces || 0) + ' hard bounces, ' + (x.probe_complaints || 0) + ' complaints';
    return s;
  }

  // renderTenantRefusals charts a tenant's refusals per minute (every
  // replica's, from the store): the total, then each reason.
  function renderTenantRefusals(r) {
    $('t-refusals-box').hidden = !r;
    if (!r) return;
    const xs = xsOf(r.points);
    const colors = [cssVar('--bad'), cssVar('--warn'), cssVar('--accent'), cssVar('--muted')];
    const reasons = Object.keys(r.reasons).sort((a, b) => r.reasons[b] - r.reasons[a]);
    const lines = [{ label: 'refused', values: r.points.map((p) => p.total), color: cssVar('--fg'), width: 2 }];
    reasons.forEach((k, i) => lines.push({ label: k, values: r.points.map((p) => (p.reasons && p.reasons[k]) || 0), color: colors[i % colors.length] }));
    chart('t-chart-refusals', xs, lines, (v) => String(Math.round(v)));
    $('t-refusals-total').textContent = reasons.length ? reasons.map((k) => num(r.reasons[k]) + ' ' + k).join(', ') : 'none';
  }

  // --- common ---

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
    act.appendChild(button('Replay', 'replay', 'Replay event ' + d.id + ' (' + d.type + ') to ' + d.url + ' for tenant ' + d.tenant + '?',
      () => api('POST', '/v1/webhooks/dead/' + enc(d.id) + '/replay', {})));
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

  let refreshing = null;
  function refresh() {
    // One refresh at a time; a call during one waits for it and runs again.
    const run = async () => {
      if (!token()) return showLogin('');
      try {
        const [tenants, breakers, account, feed, refusals, health, dead] = await Promise.all([
          api('GET', '/v1/tenants'), api('GET', '/v1/breakers'), api('GET', '/v1/account?span=' + chosenSpan()), api('GET', '/v1/feed?limit=' + FEED_SHOWN),
          api('GET', '/v1/refusals?span=1h'), optional(api('GET', '/v1/webhooks/health')), optional(api('GET', '/v1/webhooks/dead?limit=100'))]);
        const series = await Promise.all(tenants.tenants.map((t) =>
          api('GET', '/v1/tenants/' + enc(t.id) + '/series').then((s) => s.points, () => [])));
        last = { tenants: tenants, breakers: breakers.breakers, series: series, account: account, feed: feed, refusals: refusals };
        showMain();
        render(last);
        renderHooks(health, dead);
        await renderTenantPage(last);
        $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
        document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
      } catch (e) {
        handle(e);
      }
    };
    refreshing = (refreshing || Promise.resolve()).then(run);
    return refreshing;
  }

  function render(d) {
    const g = d.tenants.global_freeze;
    $('global').className = 'banner' + (g.frozen ? ' frozen' : '');
    $('global-state').textContent = g.frozen ? 'All sending is frozen' : 'Sending is on';
    $('global-reason').textContent = g.frozen && g.reason ? g.reason + ' (' + (g.by || '?') + ', ' + fmtTime(g.at) + ')' : '';
    $('freeze-all').hidden = g.frozen;
    $('unfreeze-all').hidden = !g.frozen;

    renderAccount(d.account);
    renderFeed(d.feed.items);
    renderTenants(d);

    const frozen = d.tenants.tenants.filter((t) => t.freeze.frozen);
    $('frozen').replaceChildren(...(frozen.length ? frozen.map((t) =>
      el('li', {}, t.id + (t.freeze.reason ? ': ' + t.freeze.reason : '') + ' (' + (t.freeze.by || '?') + ', ' + fmtTime(t.freeze.at) + ')'))
      : [el('li', { class: 'muted' }, 'none')]));

    const trips = [];
    for (const b of d.breakers) for (const tr of b.trips || []) trips.push({ tenant: b.tenant, at: tr.at, reason: tr.reason });
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

  document.addEventListener('securitypolicyviolation', (ev) => {
    cspViolations.push(ev.violatedDirective + ' ' + ev.blockedURI);
    document.body.dataset.cspViolations = String(cspViolations.length);
    $('message').textContent = 'Content-Security-Policy violation: ' + cspViolations.join('; ');
  });

  document.addEventListener('DOMContentLoaded', () => {
    document.body.dataset.cspViolations = '0';
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
    $('freeze-all').addEventListener('click', () => {
      if (!window.confirm('Freeze ALL sending, every tenant?')) return;
      api('POST', '/v1/freeze', { reason: 'frozen from the dashboard' }).catch(handle).finally(refresh);
    });
    $('unfreeze-all').addEventListener('click', () => {
      if (!window.confirm('Unfreeze all sending?')) return;
      api('POST', '/v1/unfreeze').catch(handle).finally(refresh);
    });
    $('sort').addEventListener('change', () => { if (last) renderTenants(last); });
    $('span').addEventListener('change', () => refresh());
    $('lookup-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const id = $('lookup-id').value.trim();
      if (id) lookup(id);
    });
    $('supp-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const id = currentTenant(), addr = $('supp-address').value.trim();
      if (!id || !addr || !window.confirm('Suppress ' + addr + ' for ' + id + '?')) return;
      api('POST', '/v1/suppressions', { tenant: id, address: addr, reason: 'manual' })
        .then(() => { $('supp-address').value = ''; $('message').textContent = ''; }, handle).finally(refresh);
    });
    window.addEventListener('hashchange', () => {
      window.scrollTo(0, 0);
      if (last) renderTenantPage(last).catch(handle);
    });
    let resize = null;
    window.addEventListener('resize', () => {
      clearTimeout(resize);
      resize = setTimeout(() => { if (last) { render(last); renderTenantPage(last).catch(handle); } }, 200);
    });
    refresh();
  });
})();
