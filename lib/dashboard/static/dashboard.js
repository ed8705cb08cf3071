/* Shop dashboard core: refresh loop, panel registry, API calls, formatting, safe DOM helpers.
 *
 * Panels live in static/panels/*.js and call Dashboard.register(name, refresh); refresh(ctx) is
 * awaited on every tick (every ?refresh= seconds, default 2). Data goes into the DOM only through
 * textContent / setAttribute (see el() and text()) — never innerHTML — so a brand called
 * "<img src=x onerror=...>" stays text.
 */
"use strict";

(function () {
  const params = new URLSearchParams(window.location.search);

  function numberParam(name, fallback, min, max) {
    const raw = params.get(name);
    if (raw === null || raw.trim() === "") return fallback;
    const n = Number(raw);
    return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : fallback;
  }

  // ?refresh=<seconds> (0 turns automatic refresh off), ?currency=EUR, ?until=<ISO time> (look at history)
  const refreshSeconds = numberParam("refresh", 2, 0, 3600);
  const effectiveRefresh = refreshSeconds === 0 ? 0 : Math.max(0.5, refreshSeconds);
  const currency = /^[A-Za-z]{3}$/.test(params.get("currency") || "") ? params.get("currency").toUpperCase() : "USD";
  const until = params.get("until") && !Number.isNaN(Date.parse(params.get("until"))) ? params.get("until") : null;

  const moneyFmt = new Intl.NumberFormat(undefined, { style: "currency", currency, maximumFractionDigits: 2 });
  const intFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  const timeSecFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  const panels = [];
  let tickNumber = 0;
  let busy = false;
  // server clock minus browser clock, learnt from API answers (ms); ages are computed in server time
  let clockSkewMs = 0;

  class ApiError extends Error {
    constructor(status, detail) {
      super(`HTTP ${status}: ${detail}`);
      this.status = status;
      this.detail = detail;
    }
  }

  const Dashboard = {
    params,
    /** End of the time series shown (ISO), or null for live (now). Change it with setUntil(). */
    until,
    refreshSeconds: effectiveRefresh,

    /** Look at history up to an ISO time (null: back to live); kept in the URL (?until=) and refreshed now. */
    setUntil(iso) {
      Dashboard.until = iso || null;
      const url = new URL(window.location.href);
      if (Dashboard.until) url.searchParams.set("until", Dashboard.until);
      else url.searchParams.delete("until");
      window.history.replaceState(null, "", url);
      showHistoryBar();
      tick(true);
    },

    /** Add a panel: refresh(ctx) is awaited on each tick; ctx = {tick}. */
    register(name, refresh) {
      panels.push({ name, refresh });
    },

    /** GET an API path with query params (null/undefined ones dropped); JSON or ApiError. */
    async api(path, query) {
      const url = new URL(path, window.location.origin);
      for (const [k, v] of Object.entries(query || {})) {
        if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, String(v));
      }
      const response = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" } });
      let body = null;
      try { body = await response.json(); } catch (_) { body = null; }
      if (!response.ok) {
        const detail = body && typeof body.detail === "string" ? body.detail : response.statusText;
        throw new ApiError(response.status, detail);
      }
      return body;
    },
    ApiError,

    /** Create an element: attrs set with setAttribute (null skipped), children appended as text or nodes. */
    el(tag, attrs, ...children) {
      const node = document.createElement(tag);
      for (const [k, v] of Object.entries(attrs || {})) {
        if (v === null || v === undefined || v === false) continue;
        node.setAttribute(k, v === true ? "" : String(v));
      }
      for (const child of children.flat()) {
        if (child === null || child === undefined) continue;
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
      return node;
    },

    /** The element with data-testid=id (inside root, default document). */
    byId(id, root) {
      return (root || document).querySelector(`[data-testid="${id}"]`);
    },

    /** Set the text of the element with data-testid=id. */
    text(id, value) {
      const node = Dashboard.byId(id);
      if (node) node.textContent = value === null || value === undefined ? "–" : String(value);
      return node;
    },

    show(id, visible) {
      const node = Dashboard.byId(id);
      if (node) node.hidden = !visible;
    },

    /** Replace the rows of a table's tbody. */
    setRows(tableId, rows) {
      const body = Dashboard.byId(tableId).querySelector("tbody");
      body.replaceChildren(...rows);
    },

    money: (v) => (v === null || v === undefined ? "–" : moneyFmt.format(v)),
    int: (v) => (v === null || v === undefined ? "–" : intFmt.format(v)),
    time: (iso) => (iso ? timeFmt.format(new Date(iso)) : "–"),
    timeSec: (iso) => (iso ? timeSecFmt.format(new Date(iso)) : "–"),
    dateTime: (iso) => (iso ? dateTimeFmt.format(new Date(iso)) : "–"),
    orDash: (v) => (v === null || v === undefined || v === "" ? "—" : String(v)),

    /** Seconds between an ISO time and now, in server time. */
    ageSeconds(iso) {
      return iso ? (Date.now() + clockSkewMs - Date.parse(iso)) / 1000 : null;
    },

    learnServerTime(iso) {
      if (iso) clockSkewMs = Date.parse(iso) - Date.now();
    },

    ago(seconds) {
      if (seconds === null || seconds === undefined) return "never";
      const s = Math.max(0, Math.round(seconds));
      if (s < 60) return `${s} s ago`;
      if (s < 3600) return `${Math.round(s / 60)} min ago`;
      if (s < 86400 * 2) return `${Math.round(s / 3600)} h ago`;
      return `${Math.round(s / 86400)} days ago`;
    },

    /** Create or update a Chart.js chart on canvas #canvasId; returns the chart (null if Chart.js is missing). */
    chart(canvasId, labels, datasets, options) {
      if (!window.Chart) return null;
      const canvas = document.getElementById(canvasId);
      let chart = window.Chart.getChart(canvas);
      if (!chart) {
        chart = new window.Chart(canvas, {
          type: (options && options.type) || "bar",
          data: { labels, datasets },
          options: Object.assign({
            responsive: true, maintainAspectRatio: false, animation: false,
            interaction: { mode: "index", intersect: false },
            plugins: { legend: { display: datasets.length > 1 } },
            scales: { x: { ticks: { autoSkip: true, maxTicksLimit: 12, maxRotation: 0 } }, y: { beginAtZero: true } },
          }, (options && options.chartOptions) || {}),
        });
      } else {
        chart.data.labels = labels;
        datasets.forEach((d, i) => {
          if (chart.data.datasets[i]) chart.data.datasets[i].data = d.data;
          else chart.data.datasets.push(d);
        });
        chart.update("none");
      }
      return chart;
    },
  };
  window.Dashboard = Dashboard;

  function showHistoryBar() {
    Dashboard.show("history-bar", Boolean(Dashboard.until));
    if (Dashboard.until) Dashboard.text("history-until", Dashboard.dateTime(Dashboard.until));
  }

  let again = false;
  async function tick(force) {
    if (busy) { again = again || force === true; return; } // still refreshing: skip this beat (or queue a forced one)
    busy = true;
    tickNumber += 1;
    const ctx = { tick: tickNumber };
    try {
      const results = await Promise.allSettled(panels.map((p) => p.refresh(ctx)));
      const failed = results.filter((r) => r.status === "rejected");
      failed.forEach((r) => console.warn("panel refresh failed:", r.reason));
      const offline = failed.some((r) => !(r.reason instanceof ApiError));
      Dashboard.show("connection-status", offline);
      document.body.dataset.refreshCount = String(tickNumber);
      document.body.dataset.refreshedAt = new Date().toISOString();
    } finally {
      busy = false;
      if (again) { again = false; tick(); }
    }
  }

  function start() {
    Dashboard.text("refresh-seconds", effectiveRefresh || "—");
    showHistoryBar();
    Dashboard.byId("history-live").addEventListener("click", () => Dashboard.setUntil(null));
    tick();
    if (effectiveRefresh > 0) window.setInterval(tick, effectiveRefresh * 1000);
  }

  // Deferred panel scripts run after this one and before DOMContentLoaded: start once they registered.
  if (document.readyState === "complete") start();
  else document.addEventListener("DOMContentLoaded", start);
})();
