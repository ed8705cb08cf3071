/* Batch-scored panels: demand outlook (products to restock) and customer value segments.
 * API: /api/demand/outlook?limit=, /api/customers/segments
 */
"use strict";

(function () {
  const D = window.Dashboard;
  const { el } = D;

  D.register("demand-outlook", async () => {
    const o = await D.api("/api/demand/outlook", { limit: 15 });
    D.show("outlook-empty", o.products.length === 0);
    D.text("outlook-meta", o.as_of_date
      ? `next ${o.horizon_days} days after ${o.as_of_date} · ${o.demand_model} v${o.demand_model_version}, ${o.sale_model} v${o.sale_model_version}`
      : "");
    D.setRows("outlook-products", o.products.map((p) => el("tr", { "data-testid": "outlook-row", "data-product-id": p.product_id },
      el("td", { class: "num" }, p.rank),
      el("td", {}, String(p.product_id)),
      el("td", {}, p.brand || "–"),
      el("td", { class: "num" }, D.int(p.units_last_7d)),
      el("td", { class: "num" }, p.forecast_units.toFixed(1)),
      el("td", { class: "num" }, `${(100 * p.p_sale_tomorrow).toFixed(0)} %`),
    )));
  });

  D.register("customer-segments", async () => {
    const s = await D.api("/api/customers/segments");
    D.show("segments-empty", s.segments.length === 0);
    D.text("segments-meta", s.as_of ? `spend over the next ${s.horizon_days} days · ${s.model} v${s.model_version}` : "");
    D.setRows("segments-table", s.segments.map((g) => el("tr", { "data-testid": "segment-row", "data-segment": g.value_segment },
      el("td", {}, g.value_segment),
      el("td", { class: "num" }, D.int(g.customers)),
      el("td", { class: "num" }, g.avg_clv.toFixed(2)),
      el("td", { class: "num" }, g.predicted_value.toFixed(0)),
      el("td", { class: "num" }, `${(100 * g.share_of_predicted_value).toFixed(1)} %`),
    )));
  });
})();
