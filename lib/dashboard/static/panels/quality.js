/* Data-quality panel: totals, per-rule counts, recent micro-batches, latest quarantined messages.
 * API: /api/quality?batches=, /api/quarantine/recent?limit=
 */
"use strict";

(function () {
  const D = window.Dashboard;
  const { el } = D;
  const SHOWN_BATCHES = 10;

  function pct(part, whole) {
    return whole ? ` (${((100 * part) / whole).toFixed(1)} %)` : "";
  }

  D.register("quality", async () => {
    const q = await D.api("/api/quality", { batches: 50 });
    const t = q.totals;
    D.text("quality-read", D.int(t.read)).dataset.value = String(t.read);
    D.text("quality-valid", D.int(t.valid) + pct(t.valid, t.read)).dataset.value = String(t.valid);
    D.text("quality-quarantined", D.int(t.quarantined) + pct(t.quarantined, t.read)).dataset.value = String(t.quarantined);
    D.text("quality-duplicates", D.int(t.duplicates) + pct(t.duplicates, t.read)).dataset.value = String(t.duplicates);
    D.show("quality-empty", t.batches === 0);
    D.text("quality-last", q.last_processed_at
      ? `${D.int(t.batches)} micro-batches · last at ${D.timeSec(q.last_processed_at)}` : "");

    D.setRows("quality-rules", q.by_rule.map((r) => el("tr", { "data-testid": "quality-rule-row", "data-rule": r.rule, "data-count": r.count },
      el("td", {}, r.rule), el("td", { class: "num" }, D.int(r.count)))));

    D.setRows("quality-batches", q.batches.slice(0, SHOWN_BATCHES).map((b) => el("tr", {
      "data-testid": "quality-batch-row", "data-batch-id": b.batch_id,
    },
      el("td", { class: "num" }, b.batch_id),
      el("td", {}, D.timeSec(b.processed_at)),
      el("td", { class: "num" }, D.int(b.read)),
      el("td", { class: "num" }, D.int(b.valid)),
      el("td", { class: "num" }, D.int(b.quarantined)),
      el("td", { class: "num" }, D.int(b.duplicates)),
    )));

    const oldestFirst = q.batches.slice().reverse();
    D.chart("quality-canvas", oldestFirst.map((b) => String(b.batch_id)), [
      { label: "Valid", data: oldestFirst.map((b) => b.valid), backgroundColor: "#16a34a", stack: "s" },
      { label: "Quarantined", data: oldestFirst.map((b) => b.quarantined), backgroundColor: "#f59e0b", stack: "s" },
      { label: "Duplicates", data: oldestFirst.map((b) => b.duplicates), backgroundColor: "#94a3b8", stack: "s" },
    ], {
      chartOptions: {
        plugins: { legend: { display: true, position: "bottom" } },
        scales: { x: { stacked: true, title: { display: true, text: "micro-batch" }, ticks: { maxTicksLimit: 10, maxRotation: 0 } },
                  y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
  });

  D.register("quarantine", async () => {
    const data = await D.api("/api/quarantine/recent", { limit: 10 });
    D.setRows("quarantine-recent", data.messages.map((m) => {
      const raw = m.value === null ? "(empty message)" : m.value;
      const shown = raw.length > 240 ? `${raw.slice(0, 240)}…` : raw;
      return el("tr", { "data-testid": "quarantine-row", "data-offset": m.offset, "data-partition": m.partition },
        el("td", { title: D.dateTime(m.quarantined_at) }, D.timeSec(m.quarantined_at)),
        el("td", {}, m.reasons.map((r) => el("span", { class: "reason" }, r))),
        el("td", { class: "raw", title: m.value_truncated ? "message truncated by the server" : null }, shown));
    }));
    D.show("quarantine-empty", data.messages.length === 0);
  });
})();
