// The dashboard: models (from /v1/models), devices (/v1/hardware), readiness (/ready), live
// charts (/metrics/summary) and load / unload through the admin routes.

import { get, post } from "./api.js";
import { LineChart } from "./chart.js";
import { $, bytes, el, showError } from "./dom.js";

const charts = {};

function sum(values) {
  return Object.values(values || {}).reduce((a, b) => a + (b ?? 0), 0);
}

function stateBadge(state) {
  return el("span", { class: `badge state-${state}` }, state);
}

async function lifecycle(model, action, button) {
  button.disabled = true;
  showError(null);
  try {
    await post(`/v1/models/${encodeURIComponent(model)}/${action}`);
  } catch (error) {
    showError(new Error(`${action} ${model}: ${error.message}`));
  } finally {
    button.disabled = false;
    await refreshModels();
  }
}

function modelRow(m) {
  const loaded = m.state === "ready";
  const action = loaded ? "unload" : "load";
  const canAct = !m.group && ["ready", "unloaded", "failed"].includes(m.state);
  const button = el("button", { type: "button", class: "small", dataset: { action, model: m.id } },
    loaded ? "Unload" : "Load");
  button.addEventListener("click", () => lifecycle(m.id, action, button));
  if (!canAct) button.disabled = true;
  return el("tr", { dataset: { model: m.id } },
    el("td", { class: "name", title: m.source || "" }, m.id),
    el("td", {}, stateBadge(m.state || (m.group ? "group" : "?"))),
    el("td", { class: "device" }, m.device || "–"),
    el("td", {}, m.backend || "–"),
    el("td", {}, m.dtype || "–"),
    el("td", {}, bytes(m.resident_bytes)),
    el("td", {}, (m.tasks || []).join(", ")),
    el("td", {}, m.breaker || "–"),
    el("td", {}, m.queue_depth ?? "–"),
    el("td", {}, button));
}

export async function refreshModels() {
  const list = await get("/v1/models");
  $("#models tbody").replaceChildren(...list.data.map(modelRow));
  return list.data;
}

export async function refreshReady() {
  const badge = $("#ready");
  try {
    const response = await fetch("/ready");
    const body = await response.json();
    badge.textContent = body.status;
    badge.className = `badge ${response.ok ? "ok" : "warn"}`;
  } catch {
    badge.textContent = "unreachable";
    badge.className = "badge warn";
  }
}

export async function refreshHardware() {
  const hardware = await get("/v1/hardware");
  $("#devices").replaceChildren(...hardware.devices.map((d) => {
    const used = d.memory_total && d.memory_free !== null
      ? 1 - d.memory_free / d.memory_total : null;
    return el("div", { class: "card device-card", dataset: { device: d.id } },
      el("strong", {}, d.id), el("div", {}, d.name),
      el("div", {}, `backend ${d.backend || "–"} · ${(d.dtypes || []).join(", ")}`),
      el("div", {}, `memory ${bytes(d.memory_total - (d.memory_free ?? 0))} used of ${bytes(d.memory_total)}`),
      used === null ? null : el("meter", { min: "0", max: "1", value: String(used) }));
  }));
}

async function refreshMetrics() {
  const s = await get("/metrics/summary");
  charts.requests.push([s.requests_per_second]);
  const tokens = s.tokens_per_second || {};
  charts.tokens.push([tokens.completion ?? null, tokens.prompt ?? null]);
  charts.queue.push([sum(s.queue_depth), sum(s.running_sequences)]);
  const lat = s.latency_seconds;
  charts.latency.push([lat.p50, lat.p90, lat.p99]);
  charts.batch.push([s.batch_size.p50, s.batch_size.p90]);
}

// Poll every 2 s; ``onModels`` gets each fresh model list (the playground's tabs follow it).
export function startDashboard(onModels) {
  charts.requests = new LineChart($("#chart-requests"), ["requests/s"]);
  charts.tokens = new LineChart($("#chart-tokens"), ["completion", "prompt"]);
  charts.queue = new LineChart($("#chart-queue"), ["queued", "running"]);
  charts.latency = new LineChart($("#chart-latency"), ["p50", "p90", "p99"]);
  charts.batch = new LineChart($("#chart-batch"), ["p50", "p90"]);
  refreshHardware().catch(showError);
  const tick = async () => {
    await refreshReady();
    try {
      await refreshMetrics();
      onModels(await refreshModels());
    } catch (error) {
      showError(error);
    }
  };
  tick();
  return setInterval(tick, 2000);
}
