// The warren dashboard: polls the head's /api/ routes and draws each view. Plain browser
// JavaScript, no build step; every value is put in the page as text, never as HTML.
"use strict";

const POLL_MS = 2000;

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, v);
  for (const c of children.flat()) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
  return e;
}

/** A table: `columns` are [heading, cell(row), numeric?]. */
function table(columns, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, columns.map(([h, , num]) => el("th", { class: num ? "num" : undefined }, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, columns.map(([, cell, num]) => el("td", { class: num ? "num" : undefined }, cell(r)))))));
}

const short = (id) => (id ? String(id).slice(0, 12) : "—");
const state = (s) => el("span", { class: s }, s);
const when = (ms) => (ms ? new Date(ms).toLocaleTimeString() : "—");
const where = (location) => (location.startsWith("node:") ? `store of node ${short(location.slice(5))}` : location === "owner" ? "in its owner" : "—");
const logs = (url) => (url ? el("a", { href: url, target: "_blank" }, "logs") : "—");

function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

const isBytes = (resource) => resource === "memory" || resource === "object_store_memory";
const amount = (resource, n) => (isBytes(resource) ? bytes(n) : String(Math.round(n * 10000) / 10000));

function empty(text) {
  return el("p", { class: "empty" }, text);
}

/** Says whose rows a gathered list lacks (they did not answer in time). */
function unanswered(data) {
  return data.unanswered && data.unanswered.length ? el("p", { class: "note warn" }, `Rows missing from: ${data.unanswered.join(", ")}`) : null;
}

// ---- views ---------------------------------------------------------------------------------

function resourceBars(node) {
  const total = node.resources_total || {};
  const free = node.resources_available || {};
  const names = Object.keys(total).filter((r) => !r.startsWith("node:"));
  return el("div", { class: "bars" }, names.map((r) => {
    const used = node.state === "ALIVE" ? total[r] - (free[r] ?? 0) : 0;
    const pct = total[r] > 0 ? Math.min(100, (used / total[r]) * 100) : 0;
    return el("div", { class: "bar" },
      el("div", {}, `${r}: ${amount(r, used)} / ${amount(r, total[r])} used`),
      el("div", { class: "track" }, el("div", { class: "fill", style: `width:${pct}%` })));
  }));
}

function workersTable(node) {
  if (node.workers === null) return el("p", { class: "note warn" }, node.workers_error);
  if (!node.workers.length) return empty(node.state === "ALIVE" ? "No worker processes." : "The node is dead.");
  return table([
    ["PID", (w) => w.pid, true],
    ["State", (w) => state(w.state)],
    ["Process title", (w) => el("code", {}, w.title ?? "—")],
    ["Running now", (w) => (w.actor_class ? `actor ${w.actor_class}` : w.task_name ? `task ${w.task_name}` : "—")],
    ["Logs", (w) => logs(w.logs)],
  ], node.workers);
}

function drawNodes(data) {
  document.getElementById("cluster").textContent = data.cluster;
  if (!data.nodes.length) return [empty("No nodes.")];
  return data.nodes.map((n) => el("div", { class: `node ${n.state === "ALIVE" ? "" : "dead"}`, "data-node": n.node_id },
    el("h3", {}, `Node ${short(n.node_id)}`, n.is_head_node ? el("span", { class: "tag" }, "head") : null, " ",
      state(n.state), el("span", { class: "tag" }, `${n.node_name} ${n.node_ip}`)),
    resourceBars(n),
    workersTable(n)));
}

function drawTasks(data) {
  const groups = Object.entries(data.summary).map(([name, g]) => ({ name, ...g }));
  if (!groups.length) return [empty("No tasks yet. (Tasks of processes that have exited are not listed.)")];
  const states = [...new Set(groups.flatMap((g) => Object.keys(g.state_counts)))].sort();
  const out = [
    unanswered(data),
    el("h3", {}, `By name (${data.total_tasks} tasks)`),
    table([
      ["Name", (g) => g.name],
      ["Function", (g) => g.func_or_class_name],
      ["Type", (g) => g.type],
      ...states.map((s) => [s, (g) => g.state_counts[s] ?? 0, true]),
      ["Total", (g) => Object.values(g.state_counts).reduce((a, b) => a + b, 0), true],
    ], groups),
  ];
  if (data.running.length) {
    out.push(el("h3", {}, "Running now"), table([
      ["Name", (t) => t.name], ["State", (t) => state(t.state)], ["Node", (t) => short(t.node_id)],
      ["PID", (t) => t.worker_pid, true], ["Started", (t) => when(t.start_time_ms)], ["Logs", (t) => logs(t.logs)],
    ], data.running));
  }
  if (data.recent_failures.length) {
    out.push(el("h3", {}, "Recent failures"), table([
      ["Ended", (t) => when(t.end_time_ms)], ["Name", (t) => t.name], ["Error", (t) => t.error_type ?? "—"],
      ["Message", (t) => t.error_message ?? ""], ["Logs", (t) => logs(t.logs)],
    ], data.recent_failures));
  }
  return out;
}

function drawActors(data) {
  if (!data.actors.length) return [empty("No actors.")];
  return [table([
    ["Class", (a) => a.class_name], ["Name", (a) => a.name || "—"], ["State", (a) => state(a.state)],
    ["Restarts", (a) => a.num_restarts, true], ["Node", (a) => short(a.node_id)], ["PID", (a) => a.pid ?? "—", true],
    ["Death cause", (a) => a.death_cause ?? ""], ["Logs", (a) => logs(a.logs)],
  ], data.actors)];
}

function drawObjects(data) {
  return [
    unanswered(data),
    el("h3", {}, "Object stores"),
    table([
      ["Node", (s) => short(s.node_id)], ["Used", (s) => bytes(s.bytes), true],
      ["Capacity", (s) => bytes(s.capacity), true], ["Objects", (s) => s.count, true],
    ], data.stores),
    el("p", { class: "note" }, `${data.total_count} objects, ${bytes(data.total_bytes)} in all; ${data.inline.count} small ones (${bytes(data.inline.bytes)}) kept by their owners.`),
    data.objects.length ? table([
      ["Object", (o) => el("code", {}, o.object_id)], ["Size", (o) => bytes(o.object_size), true],
      ["Status", (o) => state(o.task_status)], ["Owner PID", (o) => o.owner_pid, true], ["Where", (o) => where(o.location)],
    ], data.objects) : empty("No objects."),
  ];
}

function drawJobs(data) {
  if (!data.jobs.length) return [empty("No jobs.")];
  return [table([
    ["Job", (j) => el("code", {}, j.job_id)], ["Status", (j) => state(j.status)], ["Entrypoint", (j) => j.entrypoint],
    ["Driver PID", (j) => j.driver_pid, true], ["Started", (j) => when(j.start_time)], ["Ended", (j) => when(j.end_time)],
    ["Message", (j) => j.message ?? ""],
  ], data.jobs)];
}

const VIEWS = { nodes: drawNodes, tasks: drawTasks, actors: drawActors, objects: drawObjects, jobs: drawJobs };

// ---- polling -------------------------------------------------------------------------------

async function load(name) {
  const res = await fetch(`/api/${name}`, { cache: "no-store" });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
  return body;
}

async function refresh() {
  const names = Object.keys(VIEWS);
  const results = await Promise.allSettled(names.map(load));
  const failed = [];
  results.forEach((r, i) => {
    const body = document.querySelector(`#${names[i]} .body`);
    if (r.status === "fulfilled") body.replaceChildren(...VIEWS[names[i]](r.value).filter(Boolean));
    else failed.push(`${names[i]}: ${r.reason.message}`);
  });
  const status = document.getElementById("status");
  status.className = failed.length ? "error" : "";
  status.textContent = failed.length ? `Could not update ${failed.join("; ")}` : `Updated ${new Date().toLocaleTimeString()}`;
  setTimeout(refresh, POLL_MS);
}

refresh();
