// The Leadflow dashboard: one request to /api/v1/board per refresh (every
// chart shows the same moment, for the leads the filters select), drawn
// with Apache ECharts (vendored, served by the engine). zh-CN and English;
// times in the browser's zone, days in the engine's report zone; a read
// token is asked for when the engine needs one (kept for the tab only).
"use strict";
(function () {
  const REFRESH_MS = 5000;
  const REPS_PER_PAGE = 50;
  const PAGE_ITEMS = 1000;
  const DAY_MS = 86400e3;

  const T = {
    en: {
      title: "Leadflow", tenant: "Tenant", pool: "Pool", channel: "Channel", from: "From", to: "To",
      currency: "Currency", all: "All", defaultTenant: "(default)", loading: "loading…",
      needToken: "This engine needs a read token (api.read_token) to show its numbers.", useToken: "Use token",
      tokenRefused: "The read token was refused (401).",
      updated: "Updated {t} · {n} events folded · days of {tz}", filtered: " · filtered: {f}",
      error: "Error: {e}", other: "switch", reporting: "{c} (reporting, dated rates)",
      funnelTitle: "Funnel of distinct leads", funnelNote: "Each stage counts leads created in the window that reached it, never events.",
      created: "Created", assigned: "Assigned", followedUp: "Followed up", converted: "Converted",
      dailyTitle: "Leads by creation day", dailyNote: "Days of {tz}: leads created each day, and those of them converted since.",
      leads: "leads", roiTitle: "ROI by channel", roiNote: "(revenue − cost) / cost of the leads created in the window, in {c}.",
      costTitle: "Cost per lead and per customer by channel", costNote: "{c}, in major units. CPL of unique leads leaves out duplicates.",
      cpl: "CPL", cplUnique: "CPL (unique)", cac: "CAC",
      recallTitle: "Recall effect by channel", recallNote: "Recall success rate: recalls after which another rep took the lead and followed it up in time. Conversion after recall: recalled leads later converted.",
      recallSuccess: "Recall success rate", afterRecall: "Conversion after recall",
      poolsTitle: "Leads waiting in each pool", poolsNote: "At the end of each day with movement (days of {tz}); now: {now}.",
      workloadTitle: "Rep workload", workloadNote: "Reps by open leads held as a share of capacity. Fairness (Gini of that share, 0 = even): {g}.",
      loadAxis: "% of capacity", repsAxis: "reps",
      repsTitle: "Reps", search: "search reps", repCount: "{n} reps", page: "{p} / {n}",
      rep: "Rep", holdings: "Holding", capacity: "Capacity", load: "Load", pending: "Pending",
      assignments: "Assignments", firstFollowUps: "First follow-ups", sla: "Within SLA",
      firstFollowUpP50: "To first follow-up (p50)", recalls: "Recalled from", conversions: "Conversions", revenue: "Revenue",
      kCreated: "Leads created", kConverted: "Converted", kConversion: "Conversion rate", kRoi: "ROI", kCac: "CAC",
      kSla: "Follow-up SLA met", kRecallSuccess: "Recall success rate", kAfterRecall: "Conversion after recall",
      kCycle: "Creation → successful recall (p50)", kHeldCycle: "Assigned → recalled (p50)",
      units: { ms: "ms", s: "s", min: "min", h: "h", d: "d" },
    },
    "zh-CN": {
      title: "Leadflow 线索看板", tenant: "租户", pool: "线索池", channel: "渠道", from: "起", to: "止",
      currency: "币种", all: "全部", defaultTenant: "（默认）", loading: "加载中…",
      needToken: "该引擎需要只读令牌（api.read_token）才能显示数据。", useToken: "使用令牌",
      tokenRefused: "只读令牌被拒绝（401）。",
      updated: "更新于 {t} · 已折叠 {n} 条事件 · 按 {tz} 计日", filtered: " · 筛选：{f}",
      error: "错误：{e}", other: "切换", reporting: "{c}（报告币种，按日汇率）",
      funnelTitle: "线索漏斗（按线索去重）", funnelNote: "每一阶段统计窗口内创建且到达该阶段的线索数，而非事件数。",
      created: "创建", assigned: "已分配", followedUp: "已跟进", converted: "已成交",
      dailyTitle: "按创建日的线索", dailyNote: "按 {tz} 计日：每日创建的线索及其后来成交的数量。",
      leads: "线索数", roiTitle: "各渠道 ROI", roiNote: "窗口内创建线索的（收入 − 成本）/ 成本，币种 {c}。",
      costTitle: "各渠道单条线索成本与获客成本", costNote: "{c}，主单位。去重 CPL 不计重复线索。",
      cpl: "CPL", cplUnique: "CPL（去重）", cac: "CAC",
      recallTitle: "各渠道回收效果", recallNote: "回收成功率：回收后由其他销售领取并及时跟进的比例。回收后转化率：被回收线索后来成交的比例。",
      recallSuccess: "回收成功率", afterRecall: "回收后转化率",
      poolsTitle: "各线索池待分配线索", poolsNote: "每个有流动的日子结束时（按 {tz} 计日）；当前：{now}。",
      workloadTitle: "销售负载", workloadNote: "按持有线索占容量比例统计的销售人数。公平性（该比例的基尼系数，0 为完全均衡）：{g}。",
      loadAxis: "容量占用 %", repsAxis: "销售人数",
      repsTitle: "销售", search: "搜索销售", repCount: "共 {n} 名销售", page: "{p} / {n}",
      rep: "销售", holdings: "持有", capacity: "容量", load: "负载", pending: "待确认",
      assignments: "分配次数", firstFollowUps: "首次跟进", sla: "SLA 内",
      firstFollowUpP50: "首次跟进用时（中位数）", recalls: "被回收", conversions: "成交", revenue: "收入",
      kCreated: "创建线索", kConverted: "成交", kConversion: "转化率", kRoi: "ROI", kCac: "获客成本",
      kSla: "跟进 SLA 达成率", kRecallSuccess: "回收成功率", kAfterRecall: "回收后转化率",
      kCycle: "创建 → 成功回收（中位数）", kHeldCycle: "分配 → 回收（中位数）",
      units: { ms: "毫秒", s: "秒", min: "分钟", h: "小时", d: "天" },
    },
  };

  const $ = (id) => document.getElementById(id);
  const query = new URLSearchParams(location.search);
  const hash = new URLSearchParams(location.hash.slice(1));
  const state = {
    lang: query.get("lang") || localStorage.getItem("leadflow.lang") ||
      (navigator.language && navigator.language.toLowerCase().startsWith("zh") ? "zh-CN" : "en"),
    token: hash.get("token") || sessionStorage.getItem("leadflow.token") || "",
    tenant: query.get("tenant") || "", pool: query.get("pool") || "", channel: query.get("channel") || "",
    from: query.get("from") || "", to: query.get("to") || "", currency: query.get("currency") || "",
    board: null, reps: [], sort: { key: "holdings", asc: false }, page: 0, search: "",
    charts: {}, timer: null, rendered: false,
  };
  if (!T[state.lang]) state.lang = "en";
  if (hash.get("token")) {
    // Kept for this tab only, and out of the address bar and history.
    sessionStorage.setItem("leadflow.token", state.token);
    history.replaceState(null, "", location.pathname + location.search);
  }

  const t = (key, vars) => {
    let s = T[state.lang][key];
    if (s === undefined) s = T.en[key];
    for (const k in vars || {}) s = s.split("{" + k + "}").join(vars[k]);
    return s;
  };
  const num = (v, digits) => (v === null || v === undefined || Number.isNaN(v)) ? "–" :
    Number(v).toLocaleString(state.lang, { maximumFractionDigits: digits === undefined ? 0 : digits });
  const pct = (r) => (r === null || r === undefined) ? "–" : num(100 * r, 1) + "%";
  const fractionDigits = (c) => {
    try {
      return new Intl.NumberFormat("en", { style: "currency", currency: c }).resolvedOptions().maximumFractionDigits;
    } catch (e) {
      return 2;
    }
  };
  const major = (minor, c) => (minor === null || minor === undefined) ? null : Number(minor) / Math.pow(10, fractionDigits(c));
  const money = (minor, c) => {
    const v = major(minor, c);
    if (v === null) return "–";
    try {
      return v.toLocaleString(state.lang, { style: "currency", currency: c, maximumFractionDigits: fractionDigits(c) });
    } catch (e) {
      return num(v, 2) + " " + c;
    }
  };
  const duration = (ms) => {
    if (ms === null || ms === undefined) return "–";
    const u = T[state.lang].units;
    if (ms < 1000) return num(ms) + " " + u.ms;
    if (ms < 60e3) return num(ms / 1e3, 1) + " " + u.s;
    if (ms < 3600e3) return num(ms / 60e3, 1) + " " + u.min;
    if (ms < 86400e3) return num(ms / 3600e3, 1) + " " + u.h;
    return num(ms / 86400e3, 1) + " " + u.d;
  };
  // A report day ("2026-11-20") at the browser's local midnight, so the
  // time axis labels it with its own date.
  const dayTime = (d) => { const [y, m, dd] = d.split("-").map(Number); return new Date(y, m - 1, dd).getTime(); };

  const nextDay = (d) => {
    const [y, m, dd] = d.split("-").map(Number);
    return new Date(Date.UTC(y, m - 1, dd + 1)).toISOString().slice(0, 10);
  };

  async function get(path) {
    const headers = state.token ? { Authorization: "Bearer " + state.token } : {};
    const r = await fetch(path, { headers });
    if (r.status === 401) { const e = new Error(t("tokenRefused")); e.unauthorized = true; throw e; }
    if (!r.ok) {
      let msg = r.status + "";
      try { const b = await r.json(); msg += " " + (b.code || "") + ": " + (b.message || ""); } catch (e) { /* not JSON */ }
      throw new Error(path.split("?")[0] + ": " + msg);
    }
    return r.json();
  }

  function filterQuery(extra) {
    const q = new URLSearchParams();
    for (const k of ["tenant", "pool", "channel", "from"]) if (state[k]) q.set(k, state[k]);
    // A manager's "to" is the last day shown; the API's is the day after.
    if (state.to) q.set("to", nextDay(state.to));
    for (const k in extra || {}) q.set(k, extra[k]);
    const s = q.toString();
    return s ? "?" + s : "";
  }

  function keepInAddress() {
    const q = new URLSearchParams();
    for (const k of ["tenant", "pool", "channel", "from", "to", "currency"]) if (state[k]) q.set(k, state[k]);
    q.set("lang", state.lang);
    history.replaceState(null, "", location.pathname + "?" + q.toString());
  }

  async function allReps() {
    const out = [];
    const scope = state.tenant ? "&tenant=" + encodeURIComponent(state.tenant) : "";
    for (let offset = 0; ; offset += PAGE_ITEMS) {
      const page = await get("/api/v1/reps?limit=" + PAGE_ITEMS + "&offset=" + offset + scope);
      out.push(...page.items);
      if (page.items.length < PAGE_ITEMS) return out;
    }
  }

  function fillSelect(el, values, chosen, labelOf) {
    const wanted = [""].concat(values);
    if (chosen && !wanted.includes(chosen)) wanted.push(chosen);
    el.innerHTML = "";
    for (const v of wanted) {
      const o = document.createElement("option");
      o.value = v;
      o.textContent = v === "" ? t("all") : (labelOf ? labelOf(v) : v);
      el.appendChild(o);
    }
    el.value = chosen || "";
  }

  async function refresh() {
    clearTimeout(state.timer);
    try {
      const [board, channels, pools, tenants, reps] = await Promise.all([
        get("/api/v1/board" + filterQuery()),
        get("/api/v1/stats?group_by=channel"), get("/api/v1/stats?group_by=pool"),
        get("/api/v1/stats?group_by=tenant"), allReps()]);
      $("login").classList.remove("shown");
      $("board").style.display = "";
      state.board = board;
      state.reps = reps;
      state.options = {
        channels: Object.keys(channels.rows), pools: Object.keys(pools.rows), tenants: Object.keys(tenants.rows),
      };
      render();
    } catch (e) {
      status(t("error", { e: e.message }), true);
      if (e.unauthorized) {
        $("login").classList.add("shown");
        $("board").style.display = "none";
      }
    }
    state.timer = setTimeout(refresh, REFRESH_MS);
  }

  function status(text, error) {
    const s = $("status");
    s.textContent = text;
    s.classList.toggle("error", !!error);
  }

  function chart(id) {
    if (!state.charts[id]) {
      state.charts[id] = echarts.init($(id), null, { locale: state.lang === "zh-CN" ? "ZH" : "EN", renderer: "canvas" });
    }
    return state.charts[id];
  }

  // Category axis labels that stay readable with many values.
  function categoryAxis(names) {
    return {
      type: "category", data: names,
      axisLabel: { interval: 0, rotate: names.length > 6 ? 30 : 0, width: 90, overflow: "truncate" },
    };
  }
  function zoomFor(n) {
    return n > 12 ? [{ type: "slider", height: 14, bottom: 4, startValue: 0, endValue: 11 }] : [];
  }
  const base = () => ({ animationDuration: 300, grid: { left: 64, right: 24, top: 36, bottom: 72 },
    tooltip: { trigger: "axis" }, legend: { top: 0, type: "scroll" } });

  function currencies(board) {
    const seen = {};
    const add = (row) => { for (const c in (row.money || {})) seen[c] = (seen[c] || 0) + Number(row.money[c].cost_minor_units || 0) + 1; };
    add(board.total);
    for (const k in board.by_channel) add(board.by_channel[k]);
    return Object.keys(seen).sort((a, b) => seen[b] - seen[a]);
  }
  // The money metrics of a row in the chosen currency ("@reporting": the
  // reporting currency at dated rates).
  function moneyOf(row) {
    if (state.currency === "@reporting") return row.reporting || {};
    return (row.money || {})[state.currency] || {};
  }
  function currencyCode() {
    return state.currency === "@reporting" ? state.board.reporting_currency : state.currency;
  }

  function render() {
    const b = state.board;
    document.documentElement.lang = state.lang;
    document.title = t("title");
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    $("lang").textContent = state.lang === "zh-CN" ? "English" : "中文";
    $("rep-search").placeholder = t("search");

    fillSelect($("f-tenant"), state.options.tenants, state.tenant);
    $("f-tenant").parentElement.style.display = state.options.tenants.length || state.tenant ? "" : "none";
    fillSelect($("f-pool"), state.options.pools, state.pool);
    fillSelect($("f-channel"), state.options.channels, state.channel);
    $("f-from").value = state.from;
    $("f-to").value = state.to;
    const cs = currencies(b);
    const choices = (b.reporting_currency ? ["@reporting"] : []).concat(cs);
    if (!choices.includes(state.currency)) state.currency = choices[0] || "";
    const cur = $("f-currency");
    cur.innerHTML = "";
    for (const c of choices) {
      const o = document.createElement("option");
      o.value = c;
      o.textContent = c === "@reporting" ? t("reporting", { c: b.reporting_currency }) : c;
      cur.appendChild(o);
    }
    cur.value = state.currency;

    renderKpis(b);
    renderFunnel(b.total);
    renderDaily(b);
    renderMoney(b);
    renderRecall(b);
    renderPools(b);
    renderWorkload(b);
    renderReps(b);

    const f = ["tenant", "pool", "channel"].filter((k) => state[k]).map((k) => t(k) + " " + state[k]).join(", ");
    status(t("updated", { t: new Date().toLocaleString(state.lang), n: num(b.events_folded), tz: b.time_zone }) +
      (f ? t("filtered", { f }) : ""));
    document.body.dataset.lang = state.lang;
    document.body.dataset.rendered = "yes";
    document.body.dataset.errors = String(window.leadflowErrors.length);
    if (window.leadflowErrors.length) document.body.dataset.errorList = window.leadflowErrors.join(" | ");
  }

  function renderKpis(b) {
    const total = b.total, owners = b.owners_total, m = moneyOf(total), c = currencyCode();
    const tiles = [
      [t("kCreated"), num(total.created)],
      [t("kConverted"), num(total.converted)],
      [t("kConversion"), pct(total.conversion_rate)],
      [t("kRoi"), pct(m.roi), c],
      [t("kCac"), money(m.cac_minor_units, c), c],
      [t("kSla"), pct(owners.sla_compliance)],
      [t("kRecallSuccess"), pct(total.recall_success_rate)],
      [t("kAfterRecall"), pct(total.conversion_after_recall_rate)],
      [t("kCycle"), duration(total.created_to_successful_recall_ms_p50)],
      [t("kHeldCycle"), duration(owners.assigned_to_recalled_ms_p50)],
    ];
    $("kpis").innerHTML = "";
    for (const [name, value, sub] of tiles) {
      const d = document.createElement("div");
      d.className = "kpi";
      d.innerHTML = '<div class="name"></div><div class="value"></div><div class="sub"></div>';
      d.children[0].textContent = name;
      d.children[1].textContent = value;
      d.children[2].textContent = sub || "";
      $("kpis").appendChild(d);
    }
  }

  function renderFunnel(total) {
    const values = [total.created, total.leads_assigned, total.leads_followed_up, total.converted];
    const names = [t("created"), t("assigned"), t("followedUp"), t("converted")];
    $("funnel").dataset.values = values.join(",");
    chart("funnel").setOption({
      animationDuration: 300,
      tooltip: { trigger: "item" },
      series: [{
        type: "funnel", sort: "none", left: "10%", width: "80%", top: 16, bottom: 8, min: 0,
        max: Math.max(1, values[0]), gap: 2,
        label: { show: true, position: "inside",
          formatter: (p) => p.name + "  " + num(p.value) + (values[0] ? "  (" + num(100 * p.value / values[0], 1) + "%)" : "") },
        data: names.map((name, i) => ({ name, value: values[i] })),
      }],
    }, true);
  }

  function renderDaily(b) {
    const days = Object.keys(b.by_day).sort();
    $("daily-note").textContent = t("dailyNote", { tz: b.time_zone });
    const series = (key, name) => ({ type: "bar", name, barMaxWidth: 28, data: days.map((d) => [dayTime(d), b.by_day[d][key]]) });
    chart("daily").setOption(Object.assign(base(), {
      xAxis: { type: "time", minInterval: DAY_MS },
      yAxis: { type: "value", name: t("leads"), minInterval: 1 },
      series: [series("created", t("created")), series("converted", t("converted"))],
    }), true);
  }

  function renderMoney(b) {
    const c = currencyCode();
    const names = Object.keys(b.by_channel);
    const rows = names.map((n) => moneyOf(b.by_channel[n]));
    $("roi-note").textContent = t("roiNote", { c: c || "–" });
    $("cost-note").textContent = t("costNote", { c: c || "–" });
    chart("roi").setOption(Object.assign(base(), {
      xAxis: categoryAxis(names), dataZoom: zoomFor(names.length),
      yAxis: { type: "value", name: "ROI (%)", axisLabel: { formatter: "{value}%" } },
      tooltip: { trigger: "axis", valueFormatter: (v) => v === null ? "–" : num(v, 1) + "%" },
      series: [{ type: "bar", barMaxWidth: 48, name: "ROI · " + (c || "–"), data: rows.map((m) => m.roi === null || m.roi === undefined ? null : 100 * m.roi) }],
    }), true);
    const major_ = (k) => rows.map((m) => major(m[k], c));
    chart("cost").setOption(Object.assign(base(), {
      xAxis: categoryAxis(names), dataZoom: zoomFor(names.length),
      yAxis: { type: "value", name: c || "", axisLabel: { formatter: (v) => num(v) } },
      tooltip: { trigger: "axis", valueFormatter: (v) => v === null || v === undefined ? "–" : num(v, 2) + " " + c },
      series: [
        { type: "bar", barMaxWidth: 48, name: t("cpl"), data: major_("cpl_minor_units") },
        { type: "bar", barMaxWidth: 48, name: t("cplUnique"), data: major_("cpl_unique_minor_units") },
        { type: "bar", barMaxWidth: 48, name: t("cac"), data: major_("cac_minor_units") },
      ],
    }), true);
  }

  function renderRecall(b) {
    const names = Object.keys(b.by_channel);
    const rate = (k) => names.map((n) => { const r = b.by_channel[n][k]; return r === null || r === undefined ? null : 100 * r; });
    $("recall-note").textContent = t("recallNote") + " " + t("kCycle") + ": " +
      duration(b.total.created_to_successful_recall_ms_p50) + "; " + t("kHeldCycle") + ": " +
      duration(b.owners_total.assigned_to_recalled_ms_p50) + ".";
    chart("recall").setOption(Object.assign(base(), {
      xAxis: categoryAxis(names), dataZoom: zoomFor(names.length),
      yAxis: { type: "value", name: "%", max: 100, axisLabel: { formatter: "{value}%" } },
      tooltip: { trigger: "axis", valueFormatter: (v) => v === null || v === undefined ? "–" : num(v, 1) + "%" },
      series: [
        { type: "bar", barMaxWidth: 48, name: t("recallSuccess"), data: rate("recall_success_rate") },
        { type: "bar", barMaxWidth: 48, name: t("afterRecall"), data: rate("conversion_after_recall_rate") },
      ],
    }), true);
  }

  function renderPools(b) {
    const names = Object.keys(b.pool_days);
    const now = Object.keys(b.pools).map((p) => p + " " + num(b.pools[p].waiting_now)).join(", ");
    $("pools-note").textContent = t("poolsNote", { tz: b.time_zone, now: now || "–" });
    // A step per day: the queue a day ended with, held until the next day
    // with movement; the last one drawn to the end of its day.
    const points = (days) => {
      const out = days.map((d) => [dayTime(d.date), d.waiting_at_end]);
      if (days.length) out.push([dayTime(days[days.length - 1].date) + DAY_MS, days[days.length - 1].waiting_at_end]);
      return out;
    };
    chart("pools").setOption(Object.assign(base(), {
      xAxis: { type: "time", minInterval: DAY_MS },
      yAxis: { type: "value", name: t("leads"), minInterval: 1 },
      series: names.map((p) => ({
        type: "line", name: p, step: "end", showSymbol: b.pool_days[p].length < 40,
        data: points(b.pool_days[p]),
      })),
    }), true);
  }

  // Every rep the engine knows, with the work counted for the view's leads.
  function repRows(b) {
    const rows = {};
    const row = (rep) => rows[rep] || (rows[rep] = { rep, holdings: 0, capacity: null, pending: 0 });
    for (const r of state.reps) Object.assign(row(r.rep), { capacity: r.capacity, pending: r.pending_assignments });
    for (const rep in b.holdings_by_rep) row(rep).holdings = b.holdings_by_rep[rep];
    for (const rep in b.by_owner) {
      const o = b.by_owner[rep], r = row(rep);
      r.assignments = o.assignments;
      r.firstFollowUps = o.first_follow_ups;
      r.sla = o.sla_compliance;
      r.firstFollowUpP50 = o.time_to_first_follow_up_ms_p50;
      r.recalls = Object.values(o.recalls_by_reason || {}).reduce((s, n) => s + n, 0);
      r.conversions = o.conversions;
      r.revenue = state.currency === "@reporting" ? (o.revenue_reporting || {}).minor_units : (o.revenue_minor_units || {})[state.currency];
    }
    for (const r of Object.values(rows)) r.load = r.capacity ? r.holdings / r.capacity : null;
    return Object.values(rows);
  }

  function renderWorkload(b) {
    const loads = repRows(b).filter((r) => r.load !== null).map((r) => r.load);
    const buckets = Array.from({ length: 11 }, () => 0);
    for (const l of loads) buckets[Math.min(10, Math.floor(100 * l / 10))] += 1;
    const xs = loads.slice().sort((a, c) => a - c);
    const sum = xs.reduce((s, x) => s + x, 0);
    const gini = sum > 0 ? xs.reduce((s, x, i) => s + (2 * (i + 1) - xs.length - 1) * x, 0) / (xs.length * sum) : 0;
    $("workload-note").textContent = t("workloadNote", { g: num(gini, 3) });
    $("workload").dataset.gini = gini.toFixed(3);
    const labels = buckets.map((_, i) => i === 10 ? "≥100%" : (10 * i) + "–" + (10 * i + 10) + "%");
    chart("workload").setOption(Object.assign(base(), {
      xAxis: Object.assign(categoryAxis(labels), { name: t("loadAxis"), nameLocation: "middle", nameGap: 48 }),
      yAxis: { type: "value", name: t("repsAxis"), minInterval: 1 },
      series: [{ type: "bar", barMaxWidth: 48, name: t("repsAxis"), data: buckets }],
    }), true);
  }

  const COLUMNS = [
    ["rep", (r) => r.rep], ["holdings", (r) => num(r.holdings)], ["capacity", (r) => num(r.capacity)],
    ["load", (r) => pct(r.load)], ["pending", (r) => num(r.pending)], ["assignments", (r) => num(r.assignments)],
    ["firstFollowUps", (r) => num(r.firstFollowUps)], ["sla", (r) => pct(r.sla)],
    ["firstFollowUpP50", (r) => duration(r.firstFollowUpP50)], ["recalls", (r) => num(r.recalls)],
    ["conversions", (r) => num(r.conversions)], ["revenue", (r) => money(r.revenue, currencyCode())],
  ];

  function renderReps(b) {
    const all = repRows(b);
    const needle = state.search.toLowerCase();
    const rows = all.filter((r) => !needle || r.rep.toLowerCase().includes(needle));
    const { key, asc } = state.sort;
    const value = (r) => key === "revenue" ? Number(r.revenue || 0) : r[key];
    rows.sort((x, y) => {
      const a = value(x), c = value(y);
      const d = (a === null || a === undefined ? -Infinity : a) < (c === null || c === undefined ? -Infinity : c) ? -1 :
        (a === c ? 0 : 1);
      return (asc ? d : -d) || (x.rep < y.rep ? -1 : 1);
    });
    const pages = Math.max(1, Math.ceil(rows.length / REPS_PER_PAGE));
    state.page = Math.min(state.page, pages - 1);
    const shown = rows.slice(state.page * REPS_PER_PAGE, (state.page + 1) * REPS_PER_PAGE);
    const table = $("reps");
    table.dataset.reps = String(all.length);
    const head = document.createElement("tr");
    for (const [k] of COLUMNS) {
      const th = document.createElement("th");
      th.textContent = t(k);
      th.dataset.key = k;
      if (k === key) th.className = "sorted" + (asc ? " asc" : "");
      head.appendChild(th);
    }
    table.tHead.replaceChildren(head);
    const body = document.createDocumentFragment();
    for (const r of shown) {
      const tr = document.createElement("tr");
      for (const [, cell] of COLUMNS) {
        const td = document.createElement("td");
        td.textContent = cell(r);
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    table.tBodies[0].replaceChildren(body);
    $("rep-count").textContent = t("repCount", { n: num(rows.length) });
    $("rep-page").textContent = t("page", { p: state.page + 1, n: pages });
  }

  function wire() {
    const onFilter = (id, key) => $(id).addEventListener("change", (e) => {
      state[key] = e.target.value;
      state.page = 0;
      keepInAddress();
      if (key === "currency") render(); else refresh();
    });
    onFilter("f-tenant", "tenant");
    onFilter("f-pool", "pool");
    onFilter("f-channel", "channel");
    onFilter("f-from", "from");
    onFilter("f-to", "to");
    onFilter("f-currency", "currency");
    $("lang").addEventListener("click", () => {
      state.lang = state.lang === "zh-CN" ? "en" : "zh-CN";
      localStorage.setItem("leadflow.lang", state.lang);
      keepInAddress();
      // ECharts' own texts follow the locale it was made with.
      for (const id in state.charts) state.charts[id].dispose();
      state.charts = {};
      if (state.board) render();
    });
    $("rep-search").addEventListener("input", (e) => { state.search = e.target.value; state.page = 0; if (state.board) renderReps(state.board); });
    $("rep-prev").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); renderReps(state.board); });
    $("rep-next").addEventListener("click", () => { state.page += 1; renderReps(state.board); });
    $("reps").tHead.addEventListener("click", (e) => {
      const k = e.target.dataset && e.target.dataset.key;
      if (!k) return;
      state.sort = { key: k, asc: state.sort.key === k ? !state.sort.asc : k === "rep" };
      renderReps(state.board);
    });
    $("login-form").addEventListener("submit", (e) => {
      e.preventDefault();
      state.token = $("token").value.trim();
      sessionStorage.setItem("leadflow.token", state.token);
      refresh();
    });
    window.addEventListener("resize", () => { for (const id in state.charts) state.charts[id].resize(); });
  }

  if (!$("reps").tHead) $("reps").createTHead();
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  wire();
  refresh();
})();
