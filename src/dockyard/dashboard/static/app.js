// Dockyard's dashboard: plain DOM over the Engine API, which the dashboard's
// listener serves under /api (same handlers as the unix socket). Every value from
// the API reaches the page through textContent or attributes, never as HTML.
"use strict";

const API = "/api";
const MAX_LOG_LINES = 5000;
const CHART_POINTS = 60;

const state = {
  containers: new Map(), // id -> {Id, Name, Image, State, Status}
  selected: null,
  pane: "logs",
  tab: "containers",
  paneAbort: null, // the open pane's streams
  terminal: null, // {term, ws, fit}
};

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function showMessage(text) {
  const box = $("#message");
  box.textContent = text;
  box.hidden = !text;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function check(resp) {
  if (resp.ok) return resp;
  let message = `${resp.status} ${resp.statusText}`;
  try {
    message = (await resp.json()).message || message;
  } catch (_) {
    /* not JSON */
  }
  if (resp.status === 401) {
    showMessage("Not signed in to this dashboard: open the URL with ?token=… that the daemon logged.");
  }
  throw new ApiError(resp.status, message);
}

async function api(method, path, body, signal) {
  const opts = { method, headers: {}, signal };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await check(await fetch(API + path, opts));
  if (resp.status === 204) return null;
  const type = resp.headers.get("Content-Type") || "";
  return type.includes("json") ? resp.json() : resp.text();
}

// Reads a stream of JSON lines (events, stats) until it ends or is aborted.
async function readJsonLines(resp, onValue) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) onValue(JSON.parse(line));
    }
  }
}

// ---- formatting -----------------------------------------------------------------

function shortId(id) {
  return (id || "").replace(/^sha256:/, "").slice(0, 12);
}

function bytes(n) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(n < 10 && i ? 2 : n < 100 && i ? 1 : 0)} ${units[i]}`;
}

function since(seconds) {
  const s = Math.max(0, Date.now() / 1000 - seconds);
  if (s < 60) return `${Math.round(s)} seconds ago`;
  if (s < 3600) return `${Math.round(s / 60)} minutes ago`;
  if (s < 86400) return `${Math.round(s / 3600)} hours ago`;
  return `${Math.round(s / 86400)} days ago`;
}

// ---- containers -----------------------------------------------------------------

function fromSummary(c) {
  return {
    Id: c.Id,
    Name: ((c.Names || [])[0] || "").replace(/^\//, ""),
    Image: c.Image,
    State: c.State,
    Status: c.Status,
  };
}

async function loadContainers() {
  const list = await api("GET", "/containers/json?all=1");
  state.containers = new Map(list.map((c) => [c.Id, fromSummary(c)]));
  renderContainers();
}

// What an event says about a container, applied without asking the API again: the
// page must cost the daemon nothing per `run` beyond the event stream itself.
function applyContainerEvent(ev) {
  const id = ev.Actor.ID;
  const attrs = ev.Actor.Attributes || {};
  const at = new Date(ev.timeNano / 1e6).toLocaleTimeString();
  let c = state.containers.get(id);
  if (ev.Action === "destroy") {
    state.containers.delete(id);
    if (state.selected === id) select(null);
    scheduleRender();
    return;
  }
  if (!c) {
    if (ev.Action !== "create" && ev.Action !== "start") return; // e.g. exec of a container we will list later
    c = { Id: id, Name: attrs.name || shortId(id), Image: attrs.image || "", State: "created", Status: "Created" };
    state.containers.set(id, c);
  }
  if (attrs.name) c.Name = attrs.name;
  switch (ev.Action) {
    case "start":
    case "unpause":
      c.State = "running";
      c.Status = `Up since ${at}`;
      break;
    case "die":
      c.State = "exited";
      c.Status = `Exited (${attrs.exitCode ?? "?"}) at ${at}`;
      break;
    case "pause":
      c.State = "paused";
      c.Status = `Paused at ${at}`;
      break;
    default:
      break;
  }
  scheduleRender();
  if (state.selected === id) {
    renderDetailHead();
    if (ev.Action === "start" && state.pane === "logs") openPane("logs"); // follow the new run
  }
}

// One redraw for a burst of events (a `run` makes four in a few milliseconds): the
// browser shares the machine's CPUs with the containers it watches.
let renderPending = false;
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  setTimeout(() => {
    renderPending = false;
    renderContainers();
  }, 100);
}

function renderContainers() {
  const body = $("#containers tbody");
  const rows = [...state.containers.values()].sort((a, b) => a.Name.localeCompare(b.Name));
  body.replaceChildren(
    ...rows.map((c) => {
      const tr = el(
        "tr",
        { "data-id": c.Id, "data-name": c.Name, "data-state": c.State },
        el("td", { text: c.Name }),
        el("td", { text: c.Image }),
        el("td", {}, el("span", { class: `state ${c.State}`, text: c.State })),
        el("td", { class: "dim", text: c.Status }),
      );
      if (c.Id === state.selected) tr.classList.add("selected");
      tr.addEventListener("click", () => select(c.Id));
      return tr;
    }),
  );
  $("#containers-empty").hidden = rows.length > 0;
}

function select(id) {
  closePane();
  state.selected = id;
  const detail = $("#detail");
  detail.hidden = id === null;
  renderContainers();
  if (id === null) return;
  renderDetailHead();
  openPane(state.pane);
}

function renderDetailHead() {
  const c = state.containers.get(state.selected);
  if (!c) return;
  $("#d-name").textContent = c.Name;
  const st = $("#d-state");
  st.textContent = c.State;
  st.className = `state ${c.State}`;
  $("#d-id").textContent = shortId(c.Id);
  const running = c.State === "running" || c.State === "paused";
  const buttons = document.querySelectorAll(".actions button");
  for (const b of buttons) {
    const a = b.dataset.action;
    b.disabled = (a === "start" && running) || ((a === "stop" || a === "restart") && !running);
    if (a === "remove" && b.dataset.confirm) {
      b.dataset.confirm = "";
      b.textContent = "Remove";
    }
  }
}

async function action(name, button) {
  const id = state.selected;
  if (!id) return;
  if (name === "remove" && !button.dataset.confirm) {
    button.dataset.confirm = "1"; // a second click removes: no modal dialog
    button.textContent = "Confirm remove";
    return;
  }
  const paths = {
    start: ["POST", `/containers/${id}/start`],
    stop: ["POST", `/containers/${id}/stop`],
    restart: ["POST", `/containers/${id}/restart`],
    remove: ["DELETE", `/containers/${id}?force=1`],
  };
  const [method, path] = paths[name];
  for (const b of document.querySelectorAll(".actions button")) b.disabled = true;
  try {
    await api(method, path);
    showMessage("");
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 304)) showMessage(`${name}: ${e.message}`);
  } finally {
    renderDetailHead();
  }
}

// ---- panes ----------------------------------------------------------------------

function closePane() {
  if (state.paneAbort) state.paneAbort.abort();
  state.paneAbort = null;
  closeTerminal();
}

function openPane(name) {
  closePane();
  state.pane = name;
  for (const b of document.querySelectorAll("#subtabs button")) {
    b.classList.toggle("active", b.dataset.pane === name);
  }
  for (const p of document.querySelectorAll(".pane")) p.hidden = p.id !== `pane-${name}`;
  const id = state.selected;
  if (!id) return;
  const abort = new AbortController();
  state.paneAbort = abort;
  const failed = (e) => {
    if (e.name !== "AbortError") showMessage(`${name}: ${e.message}`);
  };
  if (name === "logs") followLogs(id, abort.signal).catch(failed);
  else if (name === "stats") followStats(id, abort.signal).catch(failed);
  else if (name === "inspect") showInspect(id, abort.signal).catch(failed);
  else if (name === "timeline") showTimeline(id, abort.signal).catch(failed);
  else if (name === "terminal") prepareTerminal();
}

// Logs: Docker's multiplexed frames ([stream, 0, 0, 0, size32be] + payload) unless
// the container has a TTY (then the raw bytes).
async function followLogs(id, signal) {
  const pre = $("#logs");
  pre.replaceChildren();
  const resp = await check(
    await fetch(`${API}/containers/${id}/logs?follow=1&stdout=1&stderr=1&tail=1000`, { signal }),
  );
  const multiplexed = (resp.headers.get("Content-Type") || "").includes("multiplexed");
  const decoders = { 1: new TextDecoder(), 2: new TextDecoder() };
  const reader = resp.body.getReader();
  let buf = new Uint8Array(0);
  const append = (stream, text) => {
    if (!text) return;
    const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 20;
    pre.append(el("span", { class: stream === 2 ? "stderr" : "stdout", text }));
    while (pre.childNodes.length > MAX_LOG_LINES) pre.firstChild.remove();
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    if (!multiplexed) {
      append(1, decoders[1].decode(value, { stream: true }));
      continue;
    }
    const joined = new Uint8Array(buf.length + value.length);
    joined.set(buf);
    joined.set(value, buf.length);
    buf = joined;
    while (buf.length >= 8) {
      const size = new DataView(buf.buffer, buf.byteOffset + 4, 4).getUint32(0);
      if (buf.length < 8 + size) break;
      const stream = buf[0] === 2 ? 2 : 1;
      append(stream, decoders[stream].decode(buf.subarray(8, 8 + size), { stream: true }));
      buf = buf.slice(8 + size);
    }
  }
}

// Stats: CPU as `docker stats` computes it, memory less the page cache, network rates.
function makeChart(canvas) {
  return { canvas, series: [[], []] };
}

function drawChart(chart, max) {
  const { canvas, series } = chart;
  const ctx = canvas.getContext("2d");
  const w = canvas.width;
  const h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const top = Math.max(max || 0, ...series.flat(), 1e-9);
  const colors = ["#4c9aff", "#3fb950"];
  series.forEach((points, i) => {
    if (points.length < 2) return;
    ctx.strokeStyle = colors[i];
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach((v, j) => {
      const x = (j / (CHART_POINTS - 1)) * w;
      const y = h - 2 - (v / top) * (h - 4);
      if (j === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  });
}

function push(points, v) {
  points.push(v);
  if (points.length > CHART_POINTS) points.shift();
}

async function followStats(id, signal) {
  const charts = {
    cpu: makeChart($("#chart-cpu")),
    mem: makeChart($("#chart-mem")),
    net: makeChart($("#chart-net")),
    pids: makeChart($("#chart-pids")),
  };
  for (const c of Object.values(charts)) drawChart(c);
  for (const s of ["#stat-cpu", "#stat-mem", "#stat-net", "#stat-pids"]) $(s).textContent = "–";
  let last = null;
  const resp = await check(await fetch(`${API}/containers/${id}/stats?stream=1`, { signal }));
  await readJsonLines(resp, (s) => {
    const cpu = s.cpu_stats || {};
    const pre = s.precpu_stats || {};
    const cpuDelta = ((cpu.cpu_usage || {}).total_usage || 0) - ((pre.cpu_usage || {}).total_usage || 0);
    const sysDelta = (cpu.system_cpu_usage || 0) - (pre.system_cpu_usage || 0);
    const percent = sysDelta > 0 && cpuDelta >= 0 ? (cpuDelta / sysDelta) * (cpu.online_cpus || 1) * 100 : 0;
    const mem = s.memory_stats || {};
    const used = Math.max(0, (mem.usage || 0) - ((mem.stats || {}).inactive_file || 0));
    let rx = 0;
    let tx = 0;
    for (const n of Object.values(s.networks || {})) {
      rx += n.rx_bytes || 0;
      tx += n.tx_bytes || 0;
    }
    const t = Date.parse(s.read) / 1000 || Date.now() / 1000;
    const dt = last ? Math.max(t - last.t, 1e-3) : 0;
    const rxRate = last ? Math.max(0, (rx - last.rx) / dt) : 0;
    const txRate = last ? Math.max(0, (tx - last.tx) / dt) : 0;
    last = { t, rx, tx };
    push(charts.cpu.series[0], percent);
    push(charts.mem.series[0], used);
    push(charts.net.series[0], rxRate);
    push(charts.net.series[1], txRate);
    push(charts.pids.series[0], (s.pids_stats || {}).current || 0);
    $("#stat-cpu").textContent = `${percent.toFixed(2)} %`;
    $("#stat-mem").textContent = mem.limit ? `${bytes(used)} / ${bytes(mem.limit)}` : bytes(used);
    $("#stat-net").textContent = `${bytes(rxRate)}/s / ${bytes(txRate)}/s`;
    $("#stat-pids").textContent = String((s.pids_stats || {}).current ?? "–");
    for (const c of Object.values(charts)) drawChart(c);
  });
}

async function showInspect(id, signal) {
  const data = await api("GET", `/containers/${id}/json`, undefined, signal);
  $("#inspect").textContent = JSON.stringify(data, null, 2);
}

// ---- start timeline --------------------------------------------------------------

const PHASES = [
  ["network_ns", "network (daemon)"],
  ["request_to_monitor_ns", "request to monitor"],
  ["monitor_setup_ns", "monitor setup"],
  ["init_until_exec_ns", "init until exec"],
  ["fork_to_started_ns", "fork to started"],
];

function callRow(c, at) {
  const proc = c.process || "daemon";
  const args = (c.args || []).map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" ");
  const ms = ((c.ns || 0) / 1e6).toFixed(3);
  return [`${proc}: ${c.call}`, at, c.ns || 0, `call-${proc}`, `${proc}: ${c.call}(${args}) ${ms} ms`];
}

function spanRow(label, at, ns, cls) {
  return [label, at, ns, cls, `${label}: ${(ns / 1e6).toFixed(3)} ms`];
}

// Rows of [label, start ns, duration ns, class, tooltip], from the first instant.
// A trace whose calls carry their `start` (one monotonic clock for the CLI, the
// daemon, the monitor and the init) is drawn as recorded; an older one has
// durations only, and its calls are laid end to end from where their process begins.
function timelineRows(trace) {
  const calls = trace.calls || [];
  if (calls.some((c) => c.start > 0)) return timedRows(trace);
  const p = trace.phases || {};
  const net = p.network_ns || 0;
  const monitorAt = net + (p.request_to_monitor_ns || 0);
  const forkAt = monitorAt + (p.monitor_setup_ns || 0);
  const phaseAt = {
    network_ns: 0,
    request_to_monitor_ns: net,
    monitor_setup_ns: monitorAt,
    init_until_exec_ns: forkAt,
    fork_to_started_ns: forkAt,
  };
  const rows = [];
  for (const [key, label] of PHASES) {
    if (p[key] !== undefined) rows.push(spanRow(label, phaseAt[key], p[key], "phase"));
  }
  const cursor = { daemon: 0, monitor: monitorAt, init: forkAt };
  const laidEndToEnd = [];
  for (const c of calls) {
    const proc = c.process || "daemon";
    const at = cursor[proc] ?? 0;
    if (!laidEndToEnd.includes(proc)) laidEndToEnd.push(proc);
    cursor[proc] = at + (c.ns || 0);
    rows.push(callRow(c, at));
  }
  return { rows, laidEndToEnd };
}

function timedRows(trace) {
  const spans = []; // [label, absolute start, ns, class]
  for (const s of trace.client || []) spans.push([`cli: ${s.name}`, s.start, s.ns, "phase"]);
  if (trace.request) spans.push([`daemon: ${trace.request.name}`, trace.request.start, trace.request.ns, "phase"]);
  for (const s of trace.daemon || []) spans.push([`daemon: ${s.name}`, s.start, s.ns, "phase"]);
  const m = trace.marks || {};
  const p = trace.phases || {};
  if (m.monitor_start && m.fork) spans.push(["monitor setup", m.monitor_start, m.fork - m.monitor_start, "phase"]);
  if (m.init_start && p.init_until_exec_ns) spans.push(["init until exec", m.init_start, p.init_until_exec_ns, "phase"]);
  if (m.fork && m.started) spans.push(["fork to started", m.fork, m.started - m.fork, "phase"]);
  const calls = (trace.calls || []).filter((c) => c.start > 0);
  const base = Math.min(...spans.map((s) => s[1]).filter((t) => t > 0), ...calls.map((c) => c.start));
  const rows = spans.filter((s) => s[1] > 0 && s[2] >= 0).map(([label, at, ns, cls]) => spanRow(label, at - base, ns, cls));
  rows.sort((a, b) => a[1] - b[1]);
  for (const c of calls) rows.push(callRow(c, c.start - base));
  return { rows, laidEndToEnd: [] };
}

async function showTimeline(id, signal) {
  const box = $("#timeline");
  const note = $("#timeline-note");
  box.replaceChildren();
  note.textContent = "";
  let trace;
  try {
    trace = await api("GET", `/containers/${id}/trace`, undefined, signal);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      note.textContent = e.message;
      return;
    }
    throw e;
  }
  const { rows, laidEndToEnd } = timelineRows(trace);
  const total = Math.max(1, ...rows.map(([, at, ns]) => at + ns));
  const p = trace.phases || {};
  note.textContent =
    `Started ${trace.StartedAt || ""}: ${((p.request_to_started_ns || total) / 1e6).toFixed(2)} ms ` +
    `from request to started, ${(trace.calls || []).length} kernel calls.` +
    (laidEndToEnd.length ? ` Calls of ${laidEndToEnd.join(", ")} are placed end to end (the trace has their durations).` : "");
  const NS = "http://www.w3.org/2000/svg";
  const labelW = 260;
  const plotW = Math.max(300, box.clientWidth - labelW - 24); // the pane's width: no sideways scroll
  const rowH = 16;
  const axisH = 18;
  const height = rows.length * rowH + axisH + 4;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("width", labelW + plotW + 10);
  svg.setAttribute("height", height);
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
    return n;
  };
  const ticks = 5;
  for (let i = 0; i <= ticks; i++) {
    const x = labelW + (plotW * i) / ticks;
    add("line", { x1: x, x2: x, y1: axisH - 4, y2: height, class: "axis" });
    add("text", { x: i === ticks ? x - 44 : x + 2, y: 12 }, `${((total * i) / ticks / 1e6).toFixed(1)} ms`);
  }
  rows.forEach(([label, at, ns, cls, tip], i) => {
    const y = axisH + i * rowH + 2;
    add("text", { x: 2, y: y + 11 }, label.length > 38 ? `${label.slice(0, 37)}…` : label);
    const rect = add("rect", {
      x: labelW + (at / total) * plotW,
      y,
      width: Math.max(1, (ns / total) * plotW),
      height: rowH - 4,
      class: `bar ${cls}`,
    });
    const title = document.createElementNS(NS, "title");
    title.textContent = tip;
    rect.append(title);
  });
  box.append(svg);
}

// ---- terminal ---------------------------------------------------------------------

function prepareTerminal() {
  const status = $("#term-status");
  const c = state.containers.get(state.selected);
  if (typeof window.Terminal !== "function") {
    status.textContent = "xterm.js is not installed here: scripts/install.sh vendors it from npm.";
    return;
  }
  status.textContent = c && c.State === "running" ? "" : "The container is not running.";
}

function closeTerminal() {
  const t = state.terminal;
  state.terminal = null;
  if (!t) return;
  if (t.ws) t.ws.close();
  window.removeEventListener("resize", t.onResize);
  t.term.dispose();
}

// An xterm.js terminal on a websocket: `resizePath` is where the terminal's size goes.
function connectTerminal(wsPath, resizePath, label, endText) {
  const term = new window.Terminal({ cursorBlink: true, fontSize: 13, convertEol: false });
  const fit = window.FitAddon ? new window.FitAddon.FitAddon() : null;
  if (fit) term.loadAddon(fit);
  const box = $("#terminal");
  box.replaceChildren();
  term.open(box);
  if (fit) fit.fit();
  const status = $("#term-status");
  const ws = new WebSocket(`ws://${location.host}${wsPath}`);
  ws.binaryType = "arraybuffer";
  const encoder = new TextEncoder();
  const resize = () => {
    if (fit) fit.fit();
    api("POST", `${resizePath}?h=${term.rows}&w=${term.cols}`).catch(() => {});
  };
  const t = { term, ws, fit, onResize: resize };
  state.terminal = t;
  window.addEventListener("resize", resize);
  let sized = false;
  ws.onopen = () => {
    status.textContent = label;
    term.focus();
  };
  ws.onmessage = (m) => {
    if (!sized) {
      sized = true; // an exec runs once it speaks: a resize before that is refused
      resize();
    }
    term.write(typeof m.data === "string" ? m.data : new Uint8Array(m.data));
  };
  ws.onclose = () => {
    if (state.terminal === t) status.textContent = endText;
  };
  term.onData((d) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(d));
  });
}

// A new process in the container (docker exec -it): created through the API, its
// hijacked start relayed to this websocket by the dashboard's listener.
async function openTerminal(cmd) {
  closeTerminal();
  const id = state.selected;
  if (typeof window.Terminal !== "function" || !id) return;
  const argv = cmd.trim().split(/\s+/).filter(Boolean);
  const exec = await api("POST", `/containers/${id}/exec`, {
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    Tty: true,
    Env: ["TERM=xterm-256color"],
    Cmd: argv.length ? argv : ["/bin/sh"],
  });
  connectTerminal(`/terminal/exec/${exec.Id}`, `/exec/${exec.Id}/resize`, `exec ${shortId(exec.Id)}: ${argv.join(" ")}`, "exited");
}

// The container's own process (docker attach): the Engine API's attach/ws, as is.
function attachTerminal() {
  closeTerminal();
  const id = state.selected;
  if (typeof window.Terminal !== "function" || !id) return;
  const query = "stream=1&stdin=1&stdout=1&stderr=1";
  connectTerminal(`${API}/containers/${id}/attach/ws?${query}`, `/containers/${id}/resize`, `attached to ${shortId(id)}`, "detached");
}

// ---- images, networks, volumes -----------------------------------------------------

function fillTable(sel, rows) {
  $(`${sel} tbody`).replaceChildren(...rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", { text: c })))));
}

async function loadImages() {
  const list = await api("GET", "/images/json");
  fillTable(
    "#images",
    list.map((i) => [
      (i.RepoTags || []).join(", ") || "<none>",
      shortId(i.Id),
      since(i.Created),
      bytes(i.Size || 0),
    ]),
  );
}

async function loadNetworks() {
  const list = await api("GET", "/networks");
  fillTable(
    "#networks",
    list.map((n) => [
      n.Name,
      shortId(n.Id),
      n.Driver,
      ((n.IPAM || {}).Config || []).map((c) => c.Subnet).join(", "),
      String(Object.keys(n.Containers || {}).length),
    ]),
  );
}

async function loadVolumes() {
  const data = await api("GET", "/volumes");
  fillTable(
    "#volumes",
    (data.Volumes || []).map((v) => [v.Name, v.Driver, v.Mountpoint]),
  );
}

const LOADERS = { images: loadImages, networks: loadNetworks, volumes: loadVolumes };
let reloadTimer = null;

function showTab(name) {
  state.tab = name;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${name}`;
  if (LOADERS[name]) LOADERS[name]().catch((e) => showMessage(`${name}: ${e.message}`));
}

// An image, network or volume event reloads that table if it is the one shown
// (once for a burst of events).
function applyOtherEvent(ev) {
  const tab = { image: "images", network: "networks", volume: "volumes" }[ev.Type];
  if (!tab || tab !== state.tab) return;
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => LOADERS[tab]().catch(() => {}), 300);
}

// ---- the event stream ------------------------------------------------------------

async function watchEvents() {
  const conn = $("#conn");
  for (;;) {
    try {
      const resp = await check(await fetch(`${API}/events`));
      // Subscribed first, listed second: nothing between the two is missed.
      await loadContainers();
      conn.textContent = "live";
      conn.className = "conn live";
      await readJsonLines(resp, (ev) => {
        if (ev.Type === "container") applyContainerEvent(ev);
        else applyOtherEvent(ev);
      });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        conn.textContent = "not signed in";
        conn.className = "conn down";
        return;
      }
    }
    conn.textContent = "reconnecting…";
    conn.className = "conn down";
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function main() {
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  for (const b of document.querySelectorAll("#subtabs button")) b.addEventListener("click", () => openPane(b.dataset.pane));
  for (const b of document.querySelectorAll(".actions button")) b.addEventListener("click", () => action(b.dataset.action, b));
  $("#term-attach").addEventListener("click", () => attachTerminal());
  $("#term-form").addEventListener("submit", (e) => {
    e.preventDefault();
    openTerminal($("#term-cmd").value).catch((err) => showMessage(`terminal: ${err.message}`));
  });
  watchEvents();
}

main();
