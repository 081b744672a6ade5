// The flashsale dashboard. Numbers come from GET /dashboard/state every second and, when the server
// has the stock feed, from GET /v1/events as they change. Buttons call the admin API with the
// HttpOnly session cookie (plus the X-Flashsale-Dashboard header). No framework, no build step.
"use strict";

const POLL_MS = 1000;
const SVG = "http://www.w3.org/2000/svg";
const RESULT_COLORS = {
  reserved: "#12b76a", sold_out: "#98a2b3", limit_reached: "#7a5af8", rate_limited: "#f79009",
  sale_not_open: "#2e90fa", sale_paused: "#fdb022", idempotency_key_reused: "#15b79e",
  overloaded: "#f04438", unavailable: "#b42318",
};
const $ = (id) => document.getElementById(id);
const fmt = new Intl.NumberFormat();
const cards = new Map();
let lastState = null;
let feed = null;

// ---- helpers ---------------------------------------------------------------------------------

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function pct(part, whole) {
  return whole > 0 ? Math.max(0, Math.min(100, (100 * part) / whole)) : 0;
}

function ms(seconds) {
  // The server's figures are upper bounds of histogram buckets, hence "≤".
  if (seconds === null || seconds === undefined) return "–";
  if (!isFinite(seconds)) return "> 10 s";
  const m = seconds * 1000;
  return m < 10 ? `≤ ${+m.toFixed(2)} ms` : m < 1000 ? `≤ ${m.toFixed(0)} ms` : `≤ ${+(m / 1000).toFixed(2)} s`;
}

function duration(seconds) {
  if (!isFinite(seconds)) return "∞";
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} m ${Math.ceil(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} m`;
}

let toastTimer = 0;
function toast(text, bad = false) {
  const t = $("toast");
  t.textContent = text;
  t.className = bad ? "toast bad" : "toast";
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
}

// ---- the admin API ---------------------------------------------------------------------------

async function admin(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { "X-Flashsale-Dashboard": "1" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  try {
    const response = await fetch(path, init);
    if (response.status === 401) { window.location.replace("/dashboard"); return null; }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) { toast(`${data.error || response.status}: ${data.detail || "refused"}`, true); return null; }
    return data;
  } catch (err) {
    toast(`the server did not answer: ${err.message}`, true);
    return null;
  }
}

// ---- stock -----------------------------------------------------------------------------------

function isPaused(s) {
  return s.paused === true || s.state === "paused";
}

function card(sku) {
  let c = cards.get(sku);
  if (c) return c;
  const node = $("sku-card").content.firstElementChild.cloneNode(true);
  node.dataset.sku = sku;
  node.querySelector(".sku-id").textContent = sku;
  const form = node.querySelector("form");
  const qty = form.querySelector("input");
  const act = async (button, what, body) => {
    button.disabled = true;
    const done = await admin("POST", `/v1/admin/skus/${encodeURIComponent(sku)}/${what}`, body);
    button.disabled = false;
    if (done) { toast(`${sku}: ${what} done`); if (done.sku === sku) renderSku(done); }
  };
  form.querySelector('[data-act="pause"]').addEventListener("click", (e) => act(e.currentTarget, "pause"));
  form.querySelector('[data-act="resume"]').addEventListener("click", (e) => act(e.currentTarget, "resume"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    act(form.querySelector('[data-act="restock"]'), "restock", { qty: Number(qty.value) });
  });
  $("skus").append(node);
  c = { node, bar: node.querySelector(".bar"), segs: node.querySelectorAll(".seg"),
        state: node.querySelector(".state"), remaining: node.querySelector(".remaining"), of: node.querySelector(".of") };
  cards.set(sku, c);
  return c;
}

function renderSku(s) {
  const c = card(s.sku);
  const paused = isPaused(s);
  const state = paused ? "paused" : s.state;
  c.node.dataset.remaining = String(s.remaining);
  c.node.dataset.state = state;
  c.node.classList.toggle("paused", paused);
  c.state.textContent = state.replace("_", " ");
  c.state.className = `state ${state}`;
  c.bar.setAttribute("aria-valuemax", String(s.stock));
  c.bar.setAttribute("aria-valuenow", String(s.remaining));
  c.bar.setAttribute("aria-label", `${s.sku}: ${s.remaining} of ${s.stock} left`);
  const [left, reserved, paid] = c.segs;
  left.style.width = `${pct(s.remaining, s.stock)}%`;
  reserved.style.width = `${pct(s.reserved, s.stock)}%`;
  paid.style.width = `${pct(s.paid, s.stock)}%`;
  c.remaining.textContent = fmt.format(s.remaining);
  c.of.textContent = `of ${fmt.format(s.stock)} left · ${fmt.format(s.reserved)} reserved · ${fmt.format(s.paid)} paid`;
}

// ---- sales chart -----------------------------------------------------------------------------

function niceTop(max) {
  // The chart's top line: 2, 4, 10, 20, 40, 100, ... at least max, so its middle line is a whole number too.
  for (let step = 1; ; step *= 10) {
    for (const m of [2, 4, 10]) if (m * step >= max) return m * step;
  }
}

function renderSales(sales) {
  const svg = $("sales");
  const width = Math.max(200, svg.clientWidth || 600);
  const height = 160;
  const pad = { l: 34, r: 8, t: 10, b: 18 };
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const values = sales.per_interval;
  const slots = 300;
  const top = niceTop(Math.max(0, ...values));
  // Second i of the series spans [x(i), x(i + 1)); the newest ends at the right edge ("now").
  const x = (i) => pad.l + ((width - pad.l - pad.r) * (slots - values.length + i)) / slots;
  const y = (v) => height - pad.b - ((height - pad.t - pad.b) * v) / top;
  svg.replaceChildren();
  for (const v of [0, top / 2, top]) {
    svg.append(svgEl("line", { class: "grid-line", x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v) }));
    svg.append(svgEl("text", { x: pad.l - 6, y: y(v) + 4, "text-anchor": "end" }, fmt.format(v)));
  }
  svg.append(svgEl("text", { x: pad.l, y: height - 3 }, "−5 min"));
  svg.append(svgEl("text", { x: width - pad.r, y: height - 3, "text-anchor": "end" }, "now"));
  if (values.length) {
    // A step per second, so one second of sales shows as soon as it is sampled.
    const steps = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)} L${x(i + 1).toFixed(1)},${y(v).toFixed(1)}`);
    svg.append(svgEl("path", { class: "area", d: `M${x(0)},${y(0)} L${steps.join(" L")} L${x(values.length)},${y(0)} Z` }));
    svg.append(svgEl("path", { class: "line", d: `M${steps.join(" L")}` }));
  }
  const last = values.length ? values[values.length - 1] : 0;
  const minute = values.slice(-60).reduce((a, b) => a + b, 0);
  $("sales-caption").replaceChildren(
    el("span", {}, `now: ${fmt.format(last)} / s`),
    el("span", {}, `last minute: ${fmt.format(minute)} units`),
    el("span", {}, `peak: ${fmt.format(Math.max(0, ...values))} / s`),
  );
}

// ---- answers, latency, load, readiness, room ---------------------------------------------------

function renderAnswers(answers) {
  const entries = Object.entries(answers).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  const total = entries.reduce((a, [, n]) => a + n, 0);
  const bar = $("answers-bar");
  bar.replaceChildren(...entries.map(([r, n]) => {
    const s = el("span", { title: `${r}: ${n}` });
    s.style.width = `${pct(n, total)}%`;
    s.style.background = RESULT_COLORS[r] || "#667085";
    return s;
  }));
  const list = $("answers");
  if (!entries.length) { list.replaceChildren(el("li", { class: "muted" }, "no purchases yet")); return; }
  list.replaceChildren(...entries.map(([r, n]) => {
    const dot = el("span", { class: "dot" });
    dot.style.background = RESULT_COLORS[r] || "#667085";
    const li = el("li", { "data-result": r });
    li.append(dot, el("span", {}, r.replaceAll("_", " ")), el("span", { class: "n" }, fmt.format(n)),
              el("span", { class: "pct" }, `${pct(n, total).toFixed(1)}%`));
    return li;
  }));
}

function logPosition(seconds) {
  // 1 ms .. 1 s on a log scale, as the caption under the bar shows.
  if (seconds === null || seconds === undefined) return null;
  return pct(Math.log10(Math.max(seconds, 0.001) / 0.001), 3);
}

function renderLatency(latency) {
  $("p50").textContent = ms(latency.p50);
  $("p99").textContent = ms(latency.p99);
  for (const [key, mark] of [["p50", $("p50-mark")], ["p99", $("p99-mark")]]) {
    const at = logPosition(latency[key]);
    mark.hidden = at === null;
    if (at !== null) mark.style.left = `${at}%`;
  }
  $("latency-note").textContent = latency.count
    ? `${fmt.format(latency.count)} purchase${latency.count === 1 ? "" : "s"} timed by this worker (histogram bucket bounds)`
    : "no purchase measured yet";
}

function meter(bar, value, limit) {
  const share = pct(value, limit);
  bar.style.width = `${Math.max(share, value > 0 ? 2 : 0)}%`;
  bar.classList.toggle("hot", share >= 80);
}

function renderLoad(state) {
  $("inflight").textContent = `${fmt.format(state.inflight.value)} / ${fmt.format(state.inflight.limit)}`;
  meter($("inflight-bar"), state.inflight.value, state.inflight.limit);
  $("backlog-label").textContent = state.backlog.name;
  $("backlog").textContent = `${fmt.format(state.backlog.value)} / ${fmt.format(state.backlog.limit)}`;
  meter($("backlog-bar"), state.backlog.value, state.backlog.limit);
}

function renderReadiness(readiness) {
  const ready = $("ready");
  ready.textContent = readiness.ready ? "ready" : "not ready";
  ready.className = readiness.ready ? "pill ok" : "pill bad";
  $("checks").replaceChildren(...Object.entries(readiness.checks).map(([name, ok]) =>
    el("li", { class: ok ? "ok" : "fail", "data-check": name }, `${name.replaceAll("_", " ")}${ok ? "" : " — failing"}`)));
}

function renderRoom(room) {
  $("room").hidden = !room;
  if (!room) return;
  $("room-waiting").textContent = fmt.format(room.waiting);
  $("room-rate").textContent = fmt.format(room.admitted_per_second);
  $("room-clear").textContent = room.clear_seconds === null ? (room.paused ? "paused" : "–") : duration(room.clear_seconds);
  $("room-state").textContent = room.state.replace("_", " ");
  // Progress, not load: the share of the room's buyers admitted so far (never painted as a warning).
  const admitted = room.admitted ?? 0;
  const total = admitted + (room.waiting ?? 0);
  $("room-bar").style.width = `${pct(admitted, total)}%`;
  $("room-progress").textContent = total ? `${fmt.format(admitted)} of ${fmt.format(total)} admitted` : "nobody in the room yet";
  const input = $("room-admit");
  if (document.activeElement !== input && room.admit_rate !== undefined) input.value = String(room.admit_rate);
}

function render(state) {
  lastState = state;
  for (const s of state.skus) renderSku(s);
  renderSales(state.sales);
  renderAnswers(state.answers);
  renderLatency(state.latency);
  renderLoad(state);
  renderReadiness(state.readiness);
  renderRoom(state.room);
}

// ---- live updates ----------------------------------------------------------------------------

function setLive(text, ok) {
  const live = $("live");
  live.textContent = text;
  live.className = ok ? "pill ok" : "pill muted";
}

function follow() {
  if (feed || !window.EventSource) return;
  feed = new EventSource("/v1/events");
  const onSku = (event) => { try { renderSku(JSON.parse(event.data)); } catch (err) { /* not a SKU event */ } };
  feed.addEventListener("sku", onSku);
  feed.addEventListener("open", () => setLive("live", true));
  feed.addEventListener("error", () => setLive("reconnecting", false));
}

async function poll() {
  try {
    const response = await fetch("/dashboard/state", { credentials: "same-origin", cache: "no-store" });
    if (response.status === 401) { window.location.replace("/dashboard"); return; }
    if (response.ok) {
      const state = await response.json();
      render(state);
      if (state.feed) follow();
      else setLive("polling", true);
    }
  } catch (err) {
    setLive("offline", false);
  }
  setTimeout(poll, POLL_MS);
}

$("signout").addEventListener("click", async () => {
  await fetch("/dashboard/session", { method: "DELETE", credentials: "same-origin" });
  window.location.replace("/dashboard");
});

$("room-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (await admin("PUT", "/v1/admin/room", { admit_rate: Number($("room-admit").value) })) toast("room rate set");
});
$("room-pause").addEventListener("click", async () => { if (await admin("POST", "/v1/admin/room/pause")) toast("room paused"); });
$("room-resume").addEventListener("click", async () => { if (await admin("POST", "/v1/admin/room/resume")) toast("room resumed"); });
window.addEventListener("resize", () => { if (lastState) renderSales(lastState.sales); });

poll();
