/* Cart-recovery panel: decisions per rule, emails sent, expiry -> send time, mailed vs control.
 * API: /api/recovery
 */
"use strict";

(function () {
  const D = window.Dashboard;
  const { el } = D;

  function rate(v) {
    return v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)} %`;
  }

  D.register("recovery", async () => {
    const r = await D.api("/api/recovery", { recent: 10 });
    D.text("recovery-carts", D.int(r.abandoned_carts)).dataset.value = String(r.abandoned_carts);
    D.text("recovery-sent", D.int(r.emails_sent)).dataset.value = String(r.emails_sent);
    D.text("recovery-latency", r.median_seconds_expiry_to_send === null ? "–" : `${r.median_seconds_expiry_to_send} s`);
    D.show("recovery-empty", r.abandoned_carts === 0);
    D.text("recovery-sub", r.python_calls_last_batch === null ? "" : `${r.python_calls_last_batch} Python calls in the last sessions batch`);
    D.setRows("recovery-decisions", r.decisions.map((d) => el("tr", { "data-testid": "recovery-decision-row", "data-decision": d.decision, "data-carts": d.carts },
      el("td", {}, d.decision), el("td", { class: "num" }, D.int(d.carts)), el("td", { class: "num" }, D.money(d.cart_value)))));
    D.setRows("recovery-uplift", r.uplift.map((u) => el("tr", { "data-testid": "recovery-uplift-row", "data-arm": u.arm },
      el("td", {}, u.arm), el("td", { class: "num" }, D.int(u.carts)), el("td", { class: "num" }, D.int(u.converted_carts)),
      el("td", { class: "num" }, rate(u.conversion_rate)), el("td", { class: "num" }, D.money(u.revenue_7d)))));
    const mailed = r.uplift.find((u) => u.arm === "mailed");
    D.text("recovery-uplift-note", mailed && mailed.uplift_pp !== null
      ? `Uplift ${mailed.uplift_pp.toFixed(1)} pp · incremental revenue ${D.money(mailed.incremental_revenue)} · as of ${D.dateTime(mailed.as_of)}`
      : "Uplift appears after the nightly job (make uplift).");
  });
})();
