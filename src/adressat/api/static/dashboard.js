// adressat dashboard: asks the node's JSON APIs once a second and draws what they answer.
// Charts are hand-written SVG (a few polylines on a fixed set of elements): three line charts
// need no library, and nothing here may come from another host or a build step.
// Left open all day: every array is capped, tables are replaced (never appended to), the chart
// elements are made once and only their attributes change; a node that goes away is shown as
// "node unreachable" and the page carries on asking until it answers again.
"use strict";

(() => {
  const POLL_MS = 1000;          // one round of questions a second
  const TIMEOUT_MS = 2500;       // an answer later than this counts as none
  const HISTORY_MAX = 300;       // samples kept for the latency and queue charts (5 minutes)
  const SERIES_MAX = 900;        // points drawn of the live series at most
  const ROWS_MAX = 50;           // rows shown in any table
  const RECENT_S = 3600;         // "resolved in the last hour"
  const SVG = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  const timeFmt = new Intl.DateTimeFormat(undefined,
    { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  const dateTimeFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  const intFmt = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });

  const num = (v) => typeof v === "number" && Number.isFinite(v);
  function fmtTime(epoch) {
    if (!num(epoch)) return "—";
    const d = new Date(epoch * 1000);
    return (d.toDateString() === new Date().toDateString() ? timeFmt : dateTimeFmt).format(d);
  }
  const fmtInt = (v) => (num(v) ? intFmt.format(v) : "—");
  const fmtMs = (v) => (!num(v) ? "—" : v < 10 ? v.toFixed(1) : intFmt.format(v));
  const fmtPct = (r) => (!num(r) ? "—" : (r * 100).toFixed(r < 0.1 ? 2 : 1) + " %");
  function fmtAge(s) {
    if (!num(s)) return "—";
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
    const part = (n, unit) => (n ? " " + n + " " + unit : "");
    if (s < 3600) return (Math.floor(s / 60) + " min" + part(Math.floor(s % 60), "s"));
    return Math.floor(s / 3600) + " h" + part(Math.floor((s % 3600) / 60), "min");
  }

  // --- small DOM helpers ---------------------------------------------------------------------
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function timeEl(epoch) {
    const t = el("time", fmtTime(epoch));
    if (num(epoch)) t.dateTime = new Date(epoch * 1000).toISOString();
    return t;
  }
  function td(content, cls) {
    const c = el("td", null, cls);
    if (content instanceof Node) c.append(content);
    else c.textContent = content === null || content === undefined || content === "" ? "—" : content;
    return c;
  }
  function setFig(id, value, text) {
    const e = $(id);
    e.textContent = text;
    e.dataset.value = num(value) ? String(value) : "";
  }
  function fillRows(table, rows, cols, emptyText) {
    const body = table.tBodies[0];
    if (rows.length === 0) {
      const c = td(emptyText, "empty");
      c.colSpan = cols;
      const r = el("tr");
      r.append(c);
      body.replaceChildren(r);
    } else {
      body.replaceChildren(...rows.slice(0, ROWS_MAX));
    }
  }
  function note(id, text, error) {
    const n = $(id);
    n.textContent = text || "";
    n.classList.toggle("error", !!error);
  }
  const place = (route, node) => [route || "—", node || "—"];

  // --- charts: one fixed set of SVG elements per chart -----------------------------------------
  function makeChart(id, names) {
    const svg = $(id);
    const [w, h] = svg.getAttribute("viewBox").split(" ").slice(2).map(Number);
    const box = { x0: 50, x1: w - 10, y0: 10, y1: h - 22 };
    const mk = (tag, attrs, parent) => {
      const e = document.createElementNS(SVG, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      (parent || svg).append(e);
      return e;
    };
    const grid = [0, 0.5, 1].map((f) => {
      const y = box.y1 - f * (box.y1 - box.y0);
      mk("line", { class: "grid", x1: box.x0, x2: box.x1, y1: y, y2: y });
      return mk("text", { class: "axis", x: box.x0 - 4, y: y + 4, "text-anchor": "end" });
    });
    const xl = mk("text", { class: "axis", x: box.x0, y: h - 4 });
    const xr = mk("text", { class: "axis", x: box.x1, y: h - 4, "text-anchor": "end" });
    const lines = names.map((n) => mk("polyline", { class: "s-" + n, points: "" }));
    return { svg, box, grid, xl, xr, lines, names };
  }
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }
  // ts: epoch seconds; series: arrays of the same length; spanS: the time the x axis covers
  function drawChart(chart, ts, series, spanS, label, fmt) {
    const { box } = chart;
    const tEnd = ts.length ? ts[ts.length - 1] : Date.now() / 1000;
    const tStart = tEnd - spanS;
    let top = 0;
    for (const s of series) for (const v of s) if (num(v) && v > top) top = v;
    top = niceMax(top);
    const x = (t) => box.x0 + ((t - tStart) / spanS) * (box.x1 - box.x0);
    const y = (v) => box.y1 - (Math.min(v, top) / top) * (box.y1 - box.y0);
    series.forEach((s, k) => {
      const pts = [];
      for (let i = 0; i < ts.length; i++) {
        if (ts[i] >= tStart && num(s[i])) pts.push(x(ts[i]).toFixed(1) + "," + y(s[i]).toFixed(1));
      }
      chart.lines[k].setAttribute("points", pts.join(" "));
    });
    chart.grid[0].textContent = "0";
    chart.grid[1].textContent = Number.isInteger(top / 2) ? fmt(top / 2) : (top / 2).toFixed(1);
    chart.grid[2].textContent = fmt(top);
    chart.xl.textContent = fmtTime(tStart);
    chart.xr.textContent = fmtTime(tEnd);
    chart.svg.setAttribute("aria-label", label);
  }

  // --- talking to the node ---------------------------------------------------------------------
  // -> {ok, status, body}; status 0: no answer (unreachable or too slow)
  async function getJson(path, init) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    try {
      const r = await fetch(path, Object.assign({ cache: "no-store", signal: ctl.signal,
        headers: { Accept: "application/json" } }, init || {}));
      let body = null;
      try { body = await r.json(); } catch (_e) { body = null; }
      return { ok: r.ok, status: r.status, body };
    } catch (_e) {
      return { ok: false, status: 0, body: null };
    } finally {
      clearTimeout(timer);
    }
  }
  function problem(res) {
    if (res.status === 0) return "no answer from the node";
    const b = res.body || {};
    const why = b.detail || b.title || b.error;
    return "HTTP " + res.status + (why ? ": " + (typeof why === "string" ? why : JSON.stringify(why)) : "");
  }

  // --- panels ----------------------------------------------------------------------------------
  const history = { t: [], p50: [], p95: [], p99: [], unfinished: [], due: [] };
  function remember(t, vals) {
    history.t.push(t);
    for (const [k, v] of Object.entries(vals)) history[k].push(v);
    if (history.t.length > HISTORY_MAX) for (const a of Object.values(history)) a.shift();
  }
  let charts = null;

  // per place (route, serving node), its failure rate over the last HISTORY_MAX seconds, for
  // the sparklines of the failure-rate table; places not seen that long are forgotten
  const PLACES_KEPT_MAX = 200;
  const placeHistory = new Map();
  const placeKey = (p) => (p.route || "") + "\u0000" + (p.serving_node || "");
  function rememberPlaces(at, places) {
    for (const p of places) {
      const key = placeKey(p);
      let h = placeHistory.get(key);
      if (!h) {
        if (placeHistory.size >= PLACES_KEPT_MAX) {
          let oldest = null;
          for (const [k, v] of placeHistory) if (!oldest || v.lastAt < oldest[1]) oldest = [k, v.lastAt];
          placeHistory.delete(oldest[0]);
        }
        h = { t: [], rate: [], lastAt: at };
        placeHistory.set(key, h);
      }
      h.t.push(at);
      h.rate.push(num(p.failure_rate) ? p.failure_rate : 0);
      h.lastAt = at;
      if (h.t.length > HISTORY_MAX) { h.t.shift(); h.rate.shift(); }
    }
    for (const [k, h] of placeHistory) if (at - h.lastAt > HISTORY_MAX) placeHistory.delete(k);
  }
  function sparkline(h, at) {
    const w = 120, ht = 22;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${w} ${ht}`);
    svg.setAttribute("class", "spark");
    svg.setAttribute("aria-hidden", "true");
    const top = Math.max(0.05, ...h.rate);
    const pts = h.t.map((t, i) => (w - ((at - t) / HISTORY_MAX) * w).toFixed(1) + "," +
      (ht - 1 - (h.rate[i] / top) * (ht - 2)).toFixed(1));
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", pts.join(" "));
    svg.append(line);
    return svg;
  }

  function renderLive(b) {
    const s = b.series || {};
    const t = (s.t || []).slice(-SERIES_MAX);
    const n = t.length;
    const pick = (a) => (a || []).slice(-n);
    const acc = pick(s.accepted), del = pick(s.delivered), fail = pick(s.failed);
    // the last second that is over: its figures no longer change
    let i = n - 1;
    while (i >= 0 && t[i] + 1 > b.at) i--;
    const sec = $("tp-second");
    if (i >= 0) {
      setFig("tp-accepted", acc[i], fmtInt(acc[i]));
      setFig("tp-delivered", del[i], fmtInt(del[i]));
      setFig("tp-failed", fail[i], fmtInt(fail[i]));
      sec.textContent = fmtTime(t[i]);
      sec.dateTime = new Date(t[i] * 1000).toISOString();
      sec.dataset.t = String(t[i]);
    }
    const span = num(b.window_s) ? b.window_s : n;
    $("tp-window").textContent = fmtAge(span);
    drawChart(charts.tp, t, [acc, del, fail], span,
      `throughput, last second: accepted ${fmtInt(acc[i])}, delivered ${fmtInt(del[i])}, ` +
      `failed ${fmtInt(fail[i])} per second`, fmtInt);

    const lat = b.latency_ms || {};
    setFig("lat-p50", lat.p50, fmtMs(lat.p50));
    setFig("lat-p95", lat.p95, fmtMs(lat.p95));
    setFig("lat-p99", lat.p99, fmtMs(lat.p99));
    const q = b.queue || {};
    setFig("q-unfinished", q.unfinished, fmtInt(q.unfinished));
    setFig("q-due", q.due, fmtInt(q.due));
    setFig("q-oldest", q.oldest_due_age_s, fmtAge(q.oldest_due_age_s));
    remember(b.at, { p50: lat.p50, p95: lat.p95, p99: lat.p99, unfinished: q.unfinished,
      due: q.due });
    drawChart(charts.lat, history.t, [history.p50, history.p95, history.p99], HISTORY_MAX,
      `latency p50 ${fmtMs(lat.p50)}, p95 ${fmtMs(lat.p95)}, p99 ${fmtMs(lat.p99)} ms`, fmtMs);
    drawChart(charts.q, history.t, [history.unfinished, history.due], HISTORY_MAX,
      `queue: ${fmtInt(q.unfinished)} unfinished, ${fmtInt(q.due)} due`, fmtInt);

    rememberPlaces(b.at, b.places || []);
    const places = (b.places || []).slice().sort((a, c) =>
      (c.failure_rate || 0) - (a.failure_rate || 0) || (c.attempts || 0) - (a.attempts || 0));
    // the bars are to scale with each other: full at the worst place, or at 5 % if all are below
    const scale = Math.max(0.05, ...places.map((p) => (num(p.failure_rate) ? p.failure_rate : 0)));
    fillRows($("places-table"), places.map((p) => {
      const r = el("tr");
      const [route, node] = place(p.route, p.serving_node);
      r.dataset.route = p.route || "";
      r.dataset.node = p.serving_node || "";
      const m = el("meter");
      m.min = 0; m.max = scale; m.low = 0.01; m.high = 0.05; m.optimum = 0;
      m.value = num(p.failure_rate) ? p.failure_rate : 0;
      m.setAttribute("aria-hidden", "true");
      const rate = el("td");
      rate.append(m, el("span", fmtPct(p.failure_rate)));
      const spark = el("td");
      const h = placeHistory.get(placeKey(p));
      if (h) spark.append(sparkline(h, b.at));
      if ((p.failure_rate || 0) >= 0.05 || p.quarantined > 0) r.className = "bad";
      else if ((p.failure_rate || 0) >= 0.01) r.className = "warn";
      r.append(td(route), td(node), td(fmtInt(p.attempts), "num"), td(fmtInt(p.failures), "num"),
        rate, spark, td(fmtInt(p.subscriber_failures), "num"), td(fmtInt(p.quarantined), "num"),
        td(fmtMs(p.latency_p50_ms), "num"), td(fmtMs(p.latency_p95_ms), "num"),
        td(fmtMs(p.latency_p99_ms), "num"));
      return r;
    }), 11, "no attempts in this window");
    if (num(b.places_window_s)) $("places-window").textContent = fmtAge(b.places_window_s);
    note("n-live", "");
  }

  const SEVERITY = { critical: 0, warning: 1 };
  // open: firing, or resolved by the evidence but not yet acknowledged by a person (the same
  // as /v1/live's alerts_open and the audit's verdict)
  const isOpen = (a) => a.state === "firing" || !a.acknowledged;
  function renderAlerts(b) {
    const all = b.alerts || [];
    const open = all.filter(isOpen).sort((a, c) =>
      (a.state === "firing" ? 0 : 1) - (c.state === "firing" ? 0 : 1) ||
      (SEVERITY[a.severity] ?? 2) - (SEVERITY[c.severity] ?? 2) ||
      (c.started_at || 0) - (a.started_at || 0));
    const count = $("alerts-open");
    count.textContent = String(open.length);
    count.dataset.value = String(open.length);
    count.classList.toggle("bad", open.length > 0);
    count.classList.toggle("ok", open.length === 0);
    fillRows($("alerts-table"), open.map((a) => {
      const firing = a.state === "firing";
      const r = el("tr", null, !firing ? "" : a.severity === "critical" ? "bad" : "warn");
      r.dataset.id = String(a.id);
      r.dataset.state = a.state;
      const p = a.place || {};
      const where = el("td", null, "place");
      for (const [k, v] of Object.entries(p)) {
        if (v) where.append(el("div", (k === "serving_node" ? "node" : k) + " " + v));
      }
      if (!where.childNodes.length) where.textContent = "—";
      const what = el("td");
      what.append(el("strong", a.rule), el("br"), el("span", a.summary || ""));
      const since = el("td");
      since.append(timeEl(a.started_at), el("br"));
      if (firing) since.append(el("span", "last evidence " + fmtTime(a.last_evidence_at), "muted"));
      else since.append(el("span", "resolved " + fmtTime(a.resolved_at), "state-ok"));
      const ack = a.acknowledged ? "by " + (a.acked_by || "?") + (a.note ? ": " + a.note : "")
        : "not yet";
      r.append(td(a.severity, "sev-" + a.severity), where, what, since, td(ack));
      return r;
    }), 5, "no open alerts");
    const now = Date.now() / 1000;
    const recent = all.filter((a) => !isOpen(a) && num(a.resolved_at) &&
      now - a.resolved_at < RECENT_S).length;
    note("n-alerts", recent ? `${recent} resolved and acknowledged in the last hour` : "");
  }

  function renderCanaries(b) {
    const rows = (b.canaries || []).slice().sort((a, c) =>
      (a.all_passed === c.all_passed ? 0 : a.all_passed ? 1 : -1) ||
      String(a.route).localeCompare(String(c.route)) ||
      String(a.serving_node || "").localeCompare(String(c.serving_node || "")));
    const passing = rows.filter((c) => c.all_passed).length;
    const sum = $("canaries-summary");
    sum.textContent = `${passing} of ${rows.length} passing`;
    sum.dataset.value = String(passing);
    sum.dataset.total = String(rows.length);
    sum.classList.toggle("bad", passing < rows.length);
    sum.classList.toggle("ok", rows.length > 0 && passing === rows.length);
    fillRows($("canaries-table"), rows.map((c) => {
      const r = el("tr", null, c.all_passed ? "ok" : "bad");
      r.dataset.route = c.route || "";
      r.dataset.node = c.serving_node || "";
      r.dataset.allPassed = String(!!c.all_passed);
      const [route, node] = place(c.route, c.serving_node);
      const state = el("td", null, c.all_passed ? "state-ok" : "state-bad");
      if (c.all_passed) {
        state.append("all passed since ", timeEl(c.passing_since));
      } else {
        state.append("FAILING: " + (c.last_result || "no probe yet"));
      }
      const last = el("td");
      last.append(timeEl(c.last_at), " ", el("span", c.last_result || "", "muted"));
      r.append(td(route), td(node), state, td(fmtInt(c.passed), "num"),
        td(fmtInt(c.failed), "num"), last);
      return r;
    }), 6, "no canary probes yet");
    note("n-canaries", num(b.window_s) ? `over the last ${fmtAge(b.window_s)}` : "");
  }

  // the node's readiness each round (/health/ready: 200, or 503 with the reasons); who and
  // since when from /status, which counts the whole queue: now and then, and after an outage
  function renderReady(b) {
    const h = $("health");
    const ready = b.ready === true;
    const reasons = (b.reasons || []).map((r) => (typeof r === "string" ? r : JSON.stringify(r)));
    h.textContent = ready ? "READY" : "NOT READY" + (reasons.length ? ": " + reasons.join(", ") : "");
    h.className = "badge " + (ready ? "ok" : "bad");
  }
  let startedAt = null;
  function renderStatus(b) {
    const node = b.node || {};
    $("node-id").textContent = node.node_id ? "· node " + node.node_id : "";
    if (startedAt !== null && num(node.started_at) && node.started_at !== startedAt) {
      const r = $("restarted");
      r.textContent = "node restarted at " + fmtTime(node.started_at);
      r.hidden = false;
    }
    if (num(node.started_at)) startedAt = node.started_at;
  }

  // --- the loop --------------------------------------------------------------------------------
  const STATUS_EVERY = 30; // rounds between two questions to /status
  const PANELS = [
    { path: "/v1/live", sections: ["p-throughput", "p-latency", "p-queue", "p-places"],
      noteId: "n-live", render: renderLive },
    { path: "/v1/alerts?limit=200", sections: ["p-alerts"], noteId: "n-alerts",
      render: renderAlerts },
    { path: "/v1/canaries", sections: ["p-canaries"], noteId: "n-canaries",
      render: renderCanaries },
    { path: "/health/ready", sections: [], noteId: null, render: renderReady, answers: [503] },
    { path: "/status", sections: [], noteId: null, render: renderStatus, every: STATUS_EVERY },
  ];
  let round = 0;
  let statusDue = true;
  let unreachableSince = null;

  function show(res, { sections, noteId, render, answers }) {
    let ok = (res.ok || (answers || []).includes(res.status)) && res.body !== null;
    if (ok) {
      try {
        render(res.body);
      } catch (e) {
        ok = false;
        if (noteId) note(noteId, "could not show the answer: " + e.message, true);
        reportError(e); // a bug of the page: on the console, and the loop carries on
      }
    } else if (noteId) {
      note(noteId, "not available: " + problem(res), true);
    }
    for (const s of sections) $(s).classList.toggle("stale", !ok);
  }

  async function tick() {
    const began = performance.now();
    const beganAt = Date.now() / 1000;
    try {
      const asked = PANELS.filter((p) => !p.every || statusDue || round % p.every === 0);
      round += 1;
      const answers = await Promise.all(asked.map((p) => getJson(p.path)));
      const reachable = answers.some((a) => a.status !== 0);
      const conn = $("conn");
      if (!reachable) {
        if (unreachableSince === null) unreachableSince = Date.now() / 1000;
        conn.textContent = "node unreachable since " + fmtTime(unreachableSince) +
          " · retrying every second";
        conn.hidden = false;
        $("health").textContent = "NO ANSWER";
        $("health").className = "badge bad";
        for (const c of document.querySelectorAll(".card:not(#p-care)")) c.classList.add("stale");
        statusDue = true; // who answers next may be a restarted node
      } else {
        unreachableSince = null;
        conn.hidden = true;
        answers.forEach((a, k) => show(a, asked[k]));
        if (asked.some((p) => p.every) && answers[answers.length - 1].ok) statusDue = false;
        const u = $("updated");
        u.textContent = fmtTime(Date.now() / 1000);
        u.dateTime = new Date().toISOString();
        u.dataset.began = String(beganAt); // the answers shown were all asked after this
      }
    } finally {
      setTimeout(tick, Math.max(0, POLL_MS - (performance.now() - began)));
    }
  }

  // --- care console ----------------------------------------------------------------------------
  // datetime-local gives the viewer's wall clock time: read in the viewer's zone
  function localToEpoch(value) {
    const ms = new Date(value).getTime();
    return Number.isFinite(ms) ? ms / 1000 : null;
  }

  async function lookup(ev) {
    ev.preventDefault();
    const number = $("lookup-number").value.trim();
    const table = $("lookup-table");
    if (!number) { note("lookup-note", "enter a subscriber number", true); return; }
    const q = new URLSearchParams({ number });
    const since = $("lookup-since").value;
    if (since) {
      const t = localToEpoch(since);
      if (t === null) { note("lookup-note", "“since” is not a time", true); return; }
      q.set("since", String(t));
    }
    note("lookup-note", "looking up…");
    const res = await getJson("/v1/care/lookup?" + q.toString());
    if (!res.ok || !res.body) {
      table.hidden = true;
      table.tBodies[0].replaceChildren();
      note("lookup-note", "lookup failed: " + problem(res), true);
      return;
    }
    const msgs = res.body.messages || [];
    fillRows(table, msgs.map((m) => {
      const r = el("tr");
      const id = m.id;
      r.dataset.id = String(id);
      // "reached": this number's handset acknowledged it, though it was for another number
      const reached = m.direction === "reached";
      if (reached) r.className = "bad";
      r.append(td(id), td(reached ? "reached it, for another" : m.direction, reached ? "state-bad" : ""),
        td(m.sender), td(m.destination),
        td(timeEl(m.submitted_at)), td(timeEl(m.final_at)), td(m.state), td(m.route),
        td(m.serving_node));
      return r;
    }), 9, "no messages to or from this number");
    table.hidden = false;
    const more = msgs.length > ROWS_MAX ? ` (first ${ROWS_MAX} shown)`
      : res.body.truncated ? " (the node's limit: there may be more, narrow “since”)" : "";
    note("lookup-note", `${msgs.length} message${msgs.length === 1 ? "" : "s"} for ` +
      `${res.body.number || number}${more}, looked up at ${fmtTime(Date.now() / 1000)}`);
  }

  // the complaint's answer (api/care.py): the verdict, the message found, the same way
  function dd(dl, key, content) {
    const d = el("dd");
    if (content instanceof Node) d.append(content); else d.textContent = content ?? "—";
    dl.append(el("dt", key), d);
    return d;
  }
  function showComplaint(dl, b) {
    const m = b.message;
    if (m) {
      dd(dl, "message", m.id);
      dd(dl, "submitted", timeEl(m.submitted_at));
      dd(dl, "state", m.state);
      dd(dl, "intended for", m.intended_for);
      dd(dl, "reached", m.reached);
      dd(dl, "from account", m.account);
    } else {
      dd(dl, "message", "none found on record");
    }
    dd(dl, "route", b.route);
    dd(dl, "serving node", b.serving_node);
    dd(dl, "about", timeEl(b.about));
    dd(dl, "candidates", `${fmtInt(b.candidates)} from ${b.sender || "?"} within ` +
      `${fmtAge(b.window_s)}`);
    const same = (b.same_way && b.same_way.accounts) || {};
    const list = dd(dl, "same way", el("span"));
    let n = 0;
    for (const [account, msgs] of Object.entries(same)) {
      for (const x of msgs) {
        if (n++ >= ROWS_MAX) break;
        const line = el("div");
        line.append(`${x.id} · ${account} · `, timeEl(x.submitted_at),
          ` · ${x.state} · for ${x.intended_for}` + (x.misdelivered ? " · MISDELIVERED" : ""));
        list.append(line);
      }
    }
    if (n === 0) list.textContent = "no other message of this sender went the same way";
    else list.firstChild.remove();
    if (num(b.complaint_id)) dd(dl, "complaint", "#" + b.complaint_id);
  }

  async function complain(ev) {
    ev.preventDefault();
    const number = $("complaint-number").value.trim();
    const sender = $("complaint-sender").value.trim();
    const about = localToEpoch($("complaint-about").value);
    const verdict = $("complaint-verdict");
    const dl = $("complaint-details");
    verdict.hidden = true;
    dl.replaceChildren();
    if (!number || !sender || about === null) {
      note("complaint-note", "enter the caller’s number, when, and the sender shown", true);
      return;
    }
    note("complaint-note", "checking the audit trail…");
    const res = await getJson("/v1/care/complaints", { method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ number, about, sender }) });
    if (!res.ok || !res.body) {
      note("complaint-note", "complaint not recorded: " + problem(res), true);
      return;
    }
    const b = res.body;
    const v = String(b.verdict ?? "no verdict");
    verdict.textContent = v.replace(/_/g, " ");
    verdict.dataset.value = v;
    verdict.className = "verdict " + (/misdeliver/.test(v) ? "bad" : "ok");
    verdict.hidden = false;
    showComplaint(dl, b);
    note("complaint-note", "recorded at " + fmtTime(Date.now() / 1000));
  }

  function init() {
    $("tz").textContent = zone;
    charts = {
      tp: makeChart("tp-chart", ["accepted", "delivered", "failed"]),
      lat: makeChart("lat-chart", ["p50", "p95", "p99"]),
      q: makeChart("q-chart", ["unfinished", "due"]),
    };
    $("lookup-form").addEventListener("submit", lookup);
    $("complaint-form").addEventListener("submit", complain);
    tick();
  }
  init();
})();
