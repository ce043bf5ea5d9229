// leadflow-chart: a tiny SVG chart library, vendored with the binary so the
// dashboard works offline (no CDN). Bar charts and line charts; nothing else.
"use strict";
(function (global) {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#2f6fb0", "#e07b39", "#3a9a5b", "#b8455b", "#7c5cbf", "#8c8c3a", "#3a8c8c"];

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  function frame(target, width, height) {
    target.innerHTML = "";
    return el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "lf-chart" }, target);
  }

  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "-";
    if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (Math.abs(v) >= 1e3) return (v / 1e3).toFixed(1) + "k";
    return Math.abs(v) < 10 && v % 1 ? v.toFixed(2) : String(Math.round(v));
  }

  // bars(target, [{label, value}], {width, height, color})
  function bars(target, data, opts) {
    const o = Object.assign({ width: 460, height: 220, color: COLORS[0] }, opts || {});
    const svg = frame(target, o.width, o.height);
    const pad = { l: 44, r: 8, t: 10, b: 42 };
    const w = o.width - pad.l - pad.r, h = o.height - pad.t - pad.b;
    const max = Math.max(1e-9, ...data.map(d => Math.max(0, d.value || 0)));
    const min = Math.min(0, ...data.map(d => d.value || 0));
    const span = max - min;
    const y = v => pad.t + h - ((v - min) / span) * h;
    el("line", { x1: pad.l, x2: pad.l + w, y1: y(0), y2: y(0), stroke: "#999" }, svg);
    const bw = data.length ? w / data.length : w;
    data.forEach((d, i) => {
      const v = d.value || 0;
      const x = pad.l + i * bw + bw * 0.15;
      el("rect", { x, y: Math.min(y(v), y(0)), width: bw * 0.7, height: Math.abs(y(v) - y(0)),
        fill: d.color || o.color, "data-value": v }, svg);
      const t = el("text", { x: x + bw * 0.35, y: o.height - pad.b + 14, "text-anchor": "middle",
        "font-size": 10 }, svg);
      t.textContent = String(d.label).slice(0, 12);
      const vt = el("text", { x: x + bw * 0.35, y: Math.min(y(v), y(0)) - 2, "text-anchor": "middle",
        "font-size": 9, fill: "#333" }, svg);
      vt.textContent = fmt(v);
    });
    const mt = el("text", { x: 2, y: pad.t + 8, "font-size": 9, fill: "#666" }, svg);
    mt.textContent = fmt(max);
    return svg;
  }

  // lines(target, {name: [values...]}, {width, height})
  function lines(target, series, opts) {
    const o = Object.assign({ width: 460, height: 220 }, opts || {});
    const svg = frame(target, o.width, o.height);
    const pad = { l: 44, r: 90, t: 10, b: 20 };
    const w = o.width - pad.l - pad.r, h = o.height - pad.t - pad.b;
    const names = Object.keys(series);
    const all = names.flatMap(n => series[n]);
    const max = Math.max(1, ...all);
    const n = Math.max(2, ...names.map(k => series[k].length));
    el("line", { x1: pad.l, x2: pad.l + w, y1: pad.t + h, y2: pad.t + h, stroke: "#999" }, svg);
    names.forEach((name, si) => {
      const pts = series[name].map((v, i) => `${pad.l + (i / (n - 1)) * w},${pad.t + h - (v / max) * h}`);
      el("polyline", { points: pts.join(" "), fill: "none", stroke: COLORS[si % COLORS.length],
        "stroke-width": 2 }, svg);
      const t = el("text", { x: pad.l + w + 6, y: pad.t + 12 + si * 12, "font-size": 10,
        fill: COLORS[si % COLORS.length] }, svg);
      t.textContent = name;
    });
    const mt = el("text", { x: 2, y: pad.t + 8, "font-size": 9, fill: "#666" }, svg);
    mt.textContent = fmt(max);
    return svg;
  }

  global.LeadflowChart = { bars, lines, colors: COLORS };
})(window);
