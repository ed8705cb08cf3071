/* Cart-recovery panel: decisions per rule, emails sent, expiry -> send time, mailed vs control (intention to
 * treat: difference with its 95 % CI, p-value, verdict).
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
    D.setRows("recovery-uplift", r.uplift.map((u) => el("tr", { "data-testid": "recovery-uplift-row", "data-arm": u.arm, "data-units": u.units },
      el("td", {}, u.arm), el("td", { class: "num" }, D.int(u.carts)), el("td", { class: "num" }, D.int(u.units)),
      el("td", { class: "num" }, D.int(u.converted_units)), el("td", { class: "num" }, rate(u.conversion_rate)),
      el("td", { class: "num" }, D.money(u.revenue_per_unit)))));
    const mailed = r.uplift.find((u) => u.arm === "mailed");
    const verdict = D.text("recovery-uplift-verdict", mailed && mailed.verdict ? `Verdict: ${mailed.verdict}` : "");
    if (verdict) verdict.dataset.verdict = mailed && mailed.verdict ? mailed.verdict : "";
    D.text("recovery-uplift-note", mailed && mailed.uplift_pp !== null ? upliftNote(mailed)
      : "Uplift appears after the nightly job (make uplift).");
  });

  function signed(v, digits) {
    return `${v > 0 ? "+" : v < 0 ? "−" : "±"}${Math.abs(v).toFixed(digits)}`;
  }

  function signedMoney(v) {
    return `${v > 0 ? "+" : v < 0 ? "−" : "±"}${D.money(Math.abs(v))}`;
  }

  /** "Mailed − control: +4.8 pp (95 % CI +2.1 to +7.5 pp), p = 0.001 · detectable from 3.1 pp · revenue per
   * unit +$2.40 (95 % CI …) · as of …"; the verdict has its own line. */
  function upliftNote(m) {
    const parts = [`Mailed − control: ${signed(m.uplift_pp, 1)} pp`];
    if (m.uplift_ci_low_pp !== null && m.uplift_ci_high_pp !== null) {
      parts[0] += ` (95 % CI ${signed(m.uplift_ci_low_pp, 1)} to ${signed(m.uplift_ci_high_pp, 1)} pp)`;
    }
    if (m.p_value !== null) parts[0] += `, p = ${m.p_value < 0.001 ? "< 0.001" : m.p_value.toFixed(3)}`;
    if (m.mde_pp !== null) parts.push(`detectable from ${m.mde_pp.toFixed(1)} pp`);
    if (m.revenue_per_unit_diff !== null) {
      let rev = `revenue per unit ${signedMoney(m.revenue_per_unit_diff)}`;
      if (m.revenue_per_unit_diff_ci_low !== null && m.revenue_per_unit_diff_ci_high !== null) {
        rev += ` (95 % CI ${signedMoney(m.revenue_per_unit_diff_ci_low)} to ${signedMoney(m.revenue_per_unit_diff_ci_high)})`;
      }
      parts.push(rev);
    }
    parts.push(`as of ${D.dateTime(m.as_of)}`);
    return parts.join(" · ");
  }
})();
