// omnidesk supervisor dashboard: plain script, no build step. Figures come from /dashboard/data;
// /dashboard/events (server-sent events) says when they moved.
(function () {
  "use strict";
  // Where the desk is mounted ("" at the root, "/support" when nested in another app): the
  // server renders it into the page.
  var ROOT = (document.querySelector('meta[name="omnidesk-base"]') || { content: "" }).content;
  var TOKEN_KEY = "omnidesk.agent.token";
  var LANG_KEY = "omnidesk.dashboard.lang";
  var state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    lang: localStorage.getItem(LANG_KEY) || ((navigator.language || "").toLowerCase().indexOf("zh") === 0 ? "zh" : "en"),
    data: null, loading: false, again: false, es: null, radar: null
  };

  var T = {
    en: {
      title: "Service desk today", connecting: "connecting", live: "live", offline: "reconnecting",
      sign_out: "Sign out", sign_in_title: "Supervisor sign-in", sign_in: "Sign in",
      sign_in_hint: "Sign in with an agent account (Alice or Bob in the demo). Supervisor roles are not separate yet.",
      name: "Name", password: "Password", wrong: "Wrong name or password", updated: "updated",
      t_hours: "Last 24 hours", c_volume: "Conversations by channel", c_frt: "First response time (s)",
      c_sla: "SLA breaches (bars) and service level (line)", t_heatmap: "Peak hours (last 4 weeks)",
      t_intents: "Top intents (7 days)", t_reasons: "Hand-over reasons (7 days)",
      t_staffing: "Staffing for tomorrow (Erlang C)", t_scorecards: "Agent scorecards (7 days)",
      t_alerts: "Alerts", t_tiles: "All figures today", show_table: "Table", none: "Nothing yet",
      staffing_note: "Forecast of hand-overs per half-hour from the same weekday of the last 4 weeks with the trend; {sl} answered within {t} s; AHT {aht} s; shrinkage and chat concurrency from [analytics].",
      radar_of: "{name} against the team", forecast_total: "forecast for the day",
      queue_depth: "Queue", longest_wait_secs: "Longest wait", agents_online: "Agents online", agents_busy: "Agents busy",
      conversations: "Conversations", messages_in: "Messages in", containment: "Bot containment", handoff_rate: "Hand-over rate",
      frt_secs: "First response", reply_secs: "Reply time", aht_secs: "Handle time", resolution_secs: "Resolution time",
      resolutions: "Resolved", fcr: "First-contact resolution", service_level: "Service level", queue_wait_secs: "Queue wait",
      abandonment: "Abandoned", transfer_rate: "Transfers", csat: "CSAT", nps: "NPS", ces: "Effort (1-7)",
      sla_breaches: "SLA breaches", tickets_opened: "Tickets opened", negative_share: "Negative messages", dead_letters: "Dead letters",
      metric: "Metric", value: "Value", hour: "Hour", total: "Total", web_chat: "Web chat", we_chat: "WeChat", whats_app: "WhatsApp",
      telegram: "Telegram", sms: "SMS", email: "Email", voice: "Phone", webhook: "Marketplaces",
      weekday: "Day", mon: "Mon", tue: "Tue", wed: "Wed", thu: "Thu", fri: "Fri", sat: "Sat", sun: "Sun",
      key: "Name", this_week: "7 days", last_week: "7 days before", trend_pct: "Trend",
      slot: "Time", forecast: "Forecast", agents: "Agents (scheduled)", on_floor: "On the floor", p_wait: "P(wait)", asa_secs: "ASA",
      occupancy: "Occupancy", name_col: "Agent", agent: "Id", handled: "Handled", resolved: "Resolved", transfers: "Transfers",
      sentiment_delta: "Mood change", sentiment_improved: "Calmer", sentiment_worsened: "Angrier",
      r_volume: "Volume", r_speed: "Speed", r_efficiency: "Efficiency", r_satisfaction: "Satisfaction", r_resolution: "Resolution", r_calm: "Calm",
      at: "When", rule: "Rule", subject: "Subject", message: "Message", team: "Team"
    },
    zh: {
      title: "客服健康度仪表盘", connecting: "连接中", live: "实时", offline: "重连中",
      sign_out: "退出", sign_in_title: "主管登录", sign_in: "登录",
      sign_in_hint: "使用坐席账号登录（演示：Alice 或 Bob）。主管角色尚未单独区分。",
      name: "用户名", password: "密码", wrong: "用户名或密码错误", updated: "更新于",
      t_hours: "最近 24 小时", c_volume: "各渠道会话量", c_frt: "首次响应时间（秒）",
      c_sla: "SLA 违约（柱）与服务水平（线）", t_heatmap: "高峰时段（近 4 周）",
      t_intents: "热门意图（7 天）", t_reasons: "转人工原因（7 天）",
      t_staffing: "明日排班（Erlang C）", t_scorecards: "坐席能力雷达（7 天）",
      t_alerts: "告警", t_tiles: "今日全部指标", show_table: "明细表", none: "暂无数据",
      staffing_note: "按近 4 周同一星期几、同一时段的转人工量加趋势预测每半小时到达量；目标 {sl} 在 {t} 秒内接起；平均处理时长 {aht} 秒；缺勤率与并发数见 [analytics] 配置。",
      radar_of: "{name} 与团队对比", forecast_total: "全天预测量",
      queue_depth: "排队数", longest_wait_secs: "最长等待", agents_online: "在线坐席", agents_busy: "忙碌坐席",
      conversations: "会话量", messages_in: "客户消息", containment: "机器人解决率", handoff_rate: "转人工率",
      frt_secs: "首次响应", reply_secs: "回复时长", aht_secs: "平均处理时长", resolution_secs: "解决时长",
      resolutions: "已解决", fcr: "首次解决率", service_level: "服务水平", queue_wait_secs: "排队时长",
      abandonment: "放弃率", transfer_rate: "转接率", csat: "满意度", nps: "净推荐值", ces: "费力度（1-7）",
      sla_breaches: "SLA 违约", tickets_opened: "新建工单", negative_share: "负面情绪占比", dead_letters: "发送失败",
      metric: "指标", value: "数值", hour: "时段", total: "合计", web_chat: "网页", we_chat: "微信", whats_app: "WhatsApp",
      telegram: "Telegram", sms: "短信", email: "邮件", voice: "电话", webhook: "电商平台",
      weekday: "星期", mon: "周一", tue: "周二", wed: "周三", thu: "周四", fri: "周五", sat: "周六", sun: "周日",
      key: "名称", this_week: "近 7 天", last_week: "前 7 天", trend_pct: "趋势",
      slot: "时段", forecast: "预测量", agents: "需排班", on_floor: "在岗", p_wait: "等待概率", asa_secs: "平均应答",
      occupancy: "占用率", name_col: "坐席", agent: "编号", handled: "接待", resolved: "解决", transfers: "转接",
      sentiment_delta: "情绪变化", sentiment_improved: "转好", sentiment_worsened: "变差",
      r_volume: "接待量", r_speed: "响应速度", r_efficiency: "处理效率", r_satisfaction: "满意度", r_resolution: "解决率", r_calm: "情绪安抚",
      at: "时间", rule: "规则", subject: "对象", message: "内容", team: "团队"
    }
  };
  function t(k) { var d = T[state.lang] || T.en; return d[k] !== undefined ? d[k] : (T.en[k] !== undefined ? T.en[k] : k); }
  function $(sel) { return document.querySelector(sel); }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) { for (var k in attrs) { if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]); } }
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  var SVG = "http://www.w3.org/2000/svg";
  function sv(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  var RATES = { containment: 1, handoff_rate: 1, fcr: 1, service_level: 1, abandonment: 1, transfer_rate: 1, csat: 1, negative_share: 1, p_wait: 1, occupancy: 1 };
  var SECS = { longest_wait_secs: 1, frt_secs: 1, reply_secs: 1, aht_secs: 1, resolution_secs: 1, queue_wait_secs: 1, asa_secs: 1 };
  function dur(s) {
    if (s === null || s === undefined) return "—";
    s = Math.round(s);
    if (s < 60) return s + (state.lang === "zh" ? "秒" : "s");
    var m = Math.floor(s / 60), r = s % 60;
    if (m < 60) return state.lang === "zh" ? m + "分" + (r ? r + "秒" : "") : m + "m" + (r ? " " + r + "s" : "");
    var h = Math.floor(m / 60);
    return state.lang === "zh" ? h + "时" + (m % 60) + "分" : h + "h " + (m % 60) + "m";
  }
  function fmt(col, v) {
    if (v === null || v === undefined) return "—";
    if (RATES[col]) { var p = v * 100; return (Math.abs(p - Math.round(p)) < 0.05 ? Math.round(p) : p.toFixed(1)) + "%"; }
    if (SECS[col]) return dur(v);
    if (col === "trend_pct") return (v > 0 ? "▲ +" : v < 0 ? "▼ " : "") + v + "%";
    if (col === "nps") return Math.round(v).toString();
    if (col === "ces" || col === "sentiment_delta") return Number(v).toFixed(2);
    if (col === "weekday" || col === "key" && t(v) !== v) return t(v);
    if (typeof v === "number") return Math.round(v * 100) / 100 + "";
    return String(v);
  }
  function colName(c) { return c === "name" ? t("name_col") : (/^h\d\d$/.test(c) ? c.slice(1) : t(c)); }

  function applyI18n() {
    document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
    document.title = t("title") + " · omnidesk";
    document.querySelectorAll("[data-i18n]").forEach(function (e) { e.textContent = t(e.getAttribute("data-i18n")); });
    document.querySelectorAll("[data-i18n-placeholder]").forEach(function (e) { e.placeholder = t(e.getAttribute("data-i18n-placeholder")); });
    $("#lang").textContent = state.lang === "zh" ? "English" : "中文";
    setLive(state.es && state.es.readyState === 1 ? "on" : (state.es ? "off" : null));
  }

  function setLive(mode) {
    var l = $("#live");
    l.className = "live" + (mode ? " " + mode : "");
    l.querySelector("b").textContent = mode === "on" ? t("live") : mode === "off" ? t("offline") : t("connecting");
  }

  function api(path) {
    return fetch(ROOT + path, { headers: { authorization: "Bearer " + state.token } }).then(function (r) {
      if (r.status === 401) { signOut(); throw new Error("signed out"); }
      return r;
    });
  }

  function load() {
    if (state.loading) { state.again = true; return; }
    state.loading = true;
    api("/dashboard/data").then(function (r) { return r.json(); }).then(function (d) {
      state.data = d;
      render();
    }).catch(function () {}).then(function () {
      state.loading = false;
      if (state.again) { state.again = false; load(); }
    });
  }

  function table(id) {
    if (!state.data) return null;
    for (var i = 0; i < state.data.tables.length; i++) if (state.data.tables[i].id === id) return state.data.tables[i];
    return null;
  }

  function renderTable(id, opts) {
    opts = opts || {};
    var tb = table(id), box = document.querySelector('[data-testid="dash-table-' + id + '"]');
    if (!tb || !box) return;
    box.innerHTML = "";
    if (!tb.rows.length) { box.appendChild(el("div", { "class": "empty" }, t("none"))); return; }
    var tab = el("table"), head = el("tr");
    var cols = tb.columns.map(function (c, i) { return { c: c, i: i }; }).filter(function (x) { return !(opts.hide && opts.hide[x.c]); });
    cols.forEach(function (x) { head.appendChild(el("th", { "data-col": x.c }, colName(x.c))); });
    var thead = el("thead"); thead.appendChild(head); tab.appendChild(thead);
    var body = el("tbody");
    var max = 0;
    if (opts.heat) tb.rows.forEach(function (r) { r.slice(1).forEach(function (v) { if (v > max) max = v; }); });
    tb.rows.forEach(function (r, ri) {
      var tr = el("tr", { "data-row": ri });
      if (opts.rowClass) { var c = opts.rowClass(r, ri); if (c) tr.className = c; }
      cols.forEach(function (x) {
        var v = r[x.i], td = el("td", { "data-col": x.c }, opts.heat && x.i > 0 ? String(v) : fmt(x.c, v));
        if (opts.heat && x.i > 0) {
          var a = max ? v / max : 0;
          td.style.background = "rgba(37, 99, 235, " + (0.06 + a * 0.85).toFixed(2) + ")";
          if (a > 0.55) td.style.color = "#fff";
          td.title = colName(x.c) + ":00 · " + v;
        }
        if (x.c === "trend_pct" && v !== null) td.className = v > 0 ? "up" : v < 0 ? "down" : "";
        tr.appendChild(td);
      });
      if (opts.onRow) opts.onRow(tr, r, ri);
      body.appendChild(tr);
    });
    tab.appendChild(body);
    box.appendChild(tab);
  }

  function renderTiles() {
    var tb = table("tiles"), box = $("#tiles");
    if (!tb) return;
    box.innerHTML = "";
    tb.rows.forEach(function (r) {
      var k = r[0], v = r[1];
      var warn = (k === "sla_breaches" && v > 0) || (k === "longest_wait_secs" && v > 120) || (k === "dead_letters" && v > 0);
      var tile = el("div", { "class": "tile" + (warn ? " warn" : ""), "data-testid": "tile-" + k });
      tile.appendChild(el("div", { "class": "k" }, t(k)));
      tile.appendChild(el("div", { "class": "v", "data-testid": "tile-" + k + "-value" }, fmt(k, v)));
      box.appendChild(tile);
    });
  }

  var COLORS = ["#2563eb", "#16a34a", "#f59e0b", "#db2777", "#7c3aed", "#0891b2", "#dc2626", "#65a30d"];

  function axes(svg, w, h, pad, max, labels, every) {
    svg.appendChild(sv("line", { x1: pad.l, y1: h - pad.b, x2: w - pad.r, y2: h - pad.b, stroke: "#e5e7eb" }));
    [0, 0.5, 1].forEach(function (f) {
      var y = h - pad.b - f * (h - pad.t - pad.b);
      svg.appendChild(sv("line", { x1: pad.l, y1: y, x2: w - pad.r, y2: y, stroke: "#f3f4f6" }));
      svg.appendChild(sv("text", { x: pad.l - 4, y: y + 3, "text-anchor": "end" }, (Math.round(max * f * 10) / 10).toString()));
    });
    var n = labels.length, bw = (w - pad.l - pad.r) / n;
    labels.forEach(function (lab, i) {
      if (i % every === 0) svg.appendChild(sv("text", { x: pad.l + bw * (i + 0.5), y: h - pad.b + 12, "text-anchor": "middle" }, lab));
    });
    return bw;
  }

  function width(box) { return Math.max(260, Math.min(1400, box.clientWidth || 360)); }

  function stacked(boxId, labels, series, legendId) {
    var box = document.getElementById(boxId); box.innerHTML = "";
    var w = width(box), h = 170, pad = { l: 30, r: 6, t: 8, b: 18 };
    var totals = labels.map(function (_, i) { return series.reduce(function (s, x) { return s + (x.values[i] || 0); }, 0); });
    var max = Math.max(1, Math.max.apply(null, totals));
    var svg = sv("svg", { viewBox: "0 0 " + w + " " + h, role: "img" });
    var bw = axes(svg, w, h, pad, max, labels, w / labels.length < 22 ? 4 : 2);
    var scale = (h - pad.t - pad.b) / max;
    labels.forEach(function (_, i) {
      var y = h - pad.b;
      series.forEach(function (s, si) {
        var v = s.values[i] || 0; if (!v) return;
        var hh = v * scale; y -= hh;
        var r = sv("rect", { x: pad.l + bw * i + 1, y: y, width: Math.max(1, bw - 2), height: hh, fill: COLORS[si % COLORS.length] });
        r.appendChild(sv("title", {}, s.name + " " + labels[i] + ": " + v));
        svg.appendChild(r);
      });
    });
    box.appendChild(svg);
    if (legendId) {
      var lg = document.getElementById(legendId); lg.innerHTML = "";
      series.forEach(function (s, si) {
        if (!s.values.some(function (v) { return v; })) return;
        var span = el("span"); var i = el("i"); i.style.background = COLORS[si % COLORS.length];
        span.appendChild(i); span.appendChild(document.createTextNode(s.name)); lg.appendChild(span);
      });
    }
  }

  // A line over time; opts.bars adds bars on the left axis, opts.lineMax puts the line on a
  // right axis from 0 to lineMax (shown as percent when opts.percent).
  function line(boxId, labels, values, opts) {
    opts = opts || {};
    var box = document.getElementById(boxId); box.innerHTML = "";
    var w = width(box), h = 170, pad = { l: 30, r: opts.lineMax ? 34 : 6, t: 8, b: 18 };
    var nums = values.filter(function (v) { return v !== null && v !== undefined; });
    var max = opts.bars ? Math.max(1, Math.max.apply(null, opts.bars)) : Math.max(1, Math.max.apply(null, nums.length ? nums : [1]));
    var svg = sv("svg", { viewBox: "0 0 " + w + " " + h, role: "img" });
    var bw = axes(svg, w, h, pad, max, labels, w / labels.length < 22 ? 4 : 2);
    var plotH = h - pad.t - pad.b;
    if (opts.bars) {
      opts.bars.forEach(function (v, i) {
        if (!v) return;
        var hh = v / max * plotH;
        var r = sv("rect", { x: pad.l + bw * i + 2, y: h - pad.b - hh, width: Math.max(1, bw - 4), height: hh, fill: "#fca5a5" });
        r.appendChild(sv("title", {}, labels[i] + ": " + v)); svg.appendChild(r);
      });
    }
    var lineMax = opts.lineMax || max, pts = [];
    if (opts.lineMax) {
      [0, 0.5, 1].forEach(function (f) {
        var y = h - pad.b - f * plotH;
        svg.appendChild(sv("text", { x: w - pad.r + 4, y: y + 3, "text-anchor": "start" }, opts.percent ? Math.round(f * 100) + "%" : String(f * lineMax)));
      });
    }
    values.forEach(function (v, i) {
      if (v === null || v === undefined) return;
      var x = pad.l + bw * (i + 0.5), y = h - pad.b - v / lineMax * plotH;
      pts.push(x + "," + y);
      var c = sv("circle", { cx: x, cy: y, r: 2.5, fill: opts.color || "#2563eb" });
      c.appendChild(sv("title", {}, labels[i] + ": " + (opts.fmt ? opts.fmt(v) : v))); svg.appendChild(c);
    });
    if (pts.length > 1) svg.appendChild(sv("polyline", { points: pts.join(" "), fill: "none", stroke: opts.color || "#2563eb", "stroke-width": 1.8 }));
    box.appendChild(svg);
  }

  function renderHours() {
    var tb = table("hours"); if (!tb) return;
    var labels = tb.rows.map(function (r) { return String(r[0]).slice(-5, -3); });
    var chans = ["web_chat", "we_chat", "whats_app", "telegram", "sms", "email", "voice", "webhook"];
    var series = chans.map(function (c) {
      var i = tb.columns.indexOf(c);
      return { name: t(c), values: tb.rows.map(function (r) { return r[i]; }) };
    });
    stacked("chart-volume", labels, series, "legend-volume");
    var fi = tb.columns.indexOf("frt_secs");
    line("chart-frt", labels, tb.rows.map(function (r) { return r[fi]; }), { fmt: dur });
    var si = tb.columns.indexOf("sla_breaches"), li = tb.columns.indexOf("service_level");
    line("chart-sla", labels, tb.rows.map(function (r) { return r[li]; }),
      { bars: tb.rows.map(function (r) { return r[si]; }), color: "#059669", lineMax: 1, percent: true,
        fmt: function (v) { return fmt("service_level", v); } });
    renderTable("hours");
  }

  function renderStaffing() {
    var tb = table("staffing"); if (!tb) return;
    var ai = tb.columns.indexOf("agents"), fi = tb.columns.indexOf("forecast"), hi = tb.columns.indexOf("aht_secs");
    var labels = tb.rows.map(function (r) { return String(r[0]).slice(0, 2); });
    stacked("chart-staffing", labels, [{ name: t("agents"), values: tb.rows.map(function (r) { return r[ai]; }) }]);
    var aht = tb.rows.length ? tb.rows[0][hi] : "—";
    var target = state.data && state.data.answer_target_secs;
    var sl = state.data && state.data.service_level_target;
    $("#staffing-note").textContent = t("staffing_note").replace("{sl}", Math.round((sl || 0.8) * 100) + "%").replace("{t}", target).replace("{aht}", aht) +
      " " + t("forecast_total") + ": " + tb.rows.reduce(function (s, r) { return s + (r[fi] || 0); }, 0).toFixed(0) + ".";
    renderTable("staffing");
  }

  function radar(row, team, cols) {
    var box = $("#chart-radar"); box.innerHTML = "";
    var axesIds = ["r_volume", "r_speed", "r_efficiency", "r_satisfaction", "r_resolution", "r_calm"];
    var w = 300, h = 260, cx = 150, cy = 132, R = 95;
    var svg = sv("svg", { viewBox: "0 0 " + w + " " + h, role: "img" });
    [0.25, 0.5, 0.75, 1].forEach(function (f) {
      var pts = axesIds.map(function (_, i) { var a = -Math.PI / 2 + i * 2 * Math.PI / axesIds.length; return (cx + Math.cos(a) * R * f) + "," + (cy + Math.sin(a) * R * f); });
      svg.appendChild(sv("polygon", { points: pts.join(" "), fill: "none", stroke: "#e5e7eb" }));
    });
    axesIds.forEach(function (id, i) {
      var a = -Math.PI / 2 + i * 2 * Math.PI / axesIds.length;
      svg.appendChild(sv("line", { x1: cx, y1: cy, x2: cx + Math.cos(a) * R, y2: cy + Math.sin(a) * R, stroke: "#e5e7eb" }));
      svg.appendChild(sv("text", { x: cx + Math.cos(a) * (R + 16), y: cy + Math.sin(a) * (R + 16) + 3, "text-anchor": "middle" }, t(id)));
    });
    function poly(r, color, fill) {
      var pts = axesIds.map(function (id, i) { var a = -Math.PI / 2 + i * 2 * Math.PI / axesIds.length; var v = (r[cols.indexOf(id)] || 0) / 100; return (cx + Math.cos(a) * R * v) + "," + (cy + Math.sin(a) * R * v); });
      svg.appendChild(sv("polygon", { points: pts.join(" "), fill: fill, stroke: color, "stroke-width": 1.8 }));
    }
    if (team) poly(team, "#9ca3af", "rgba(156,163,175,.15)");
    poly(row, "#2563eb", "rgba(37,99,235,.2)");
    box.appendChild(svg);
    $("#radar-title").textContent = t("radar_of").replace("{name}", row[0] || "");
  }

  function renderScorecards() {
    var tb = table("scorecards"); if (!tb) return;
    var team = tb.rows[tb.rows.length - 1];
    var hide = { agent: 1, r_volume: 1, r_speed: 1, r_efficiency: 1, r_satisfaction: 1, r_resolution: 1, r_calm: 1 };
    if (state.radar === null || state.radar >= tb.rows.length - 1) state.radar = 0;
    renderTable("scorecards", {
      hide: hide,
      rowClass: function (r, i) { return i === tb.rows.length - 1 ? "team" : "pick" + (i === state.radar ? " sel" : ""); },
      onRow: function (tr, r, i) {
        if (i === tb.rows.length - 1) { tr.firstChild.textContent = t("team"); return; }
        tr.addEventListener("click", function () { state.radar = i; renderScorecards(); });
      }
    });
    if (tb.rows.length > 1) radar(tb.rows[state.radar], team, tb.columns);
  }

  function render() {
    if (!state.data) return;
    renderTiles();
    renderHours();
    renderTable("heatmap", { heat: true });
    renderTable("intents");
    renderTable("reasons");
    renderStaffing();
    renderScorecards();
    renderTable("alerts");
    renderTable("tiles");
    var at = new Date(state.data.at);
    $("#stamp").textContent = t("updated") + " " + at.toLocaleTimeString(state.lang === "zh" ? "zh-CN" : "en-GB");
  }

  function download(id) {
    api("/dashboard/export/" + id + ".csv").then(function (r) { return r.blob(); }).then(function (b) {
      var a = el("a", { href: URL.createObjectURL(b), download: "omnidesk-" + id + ".csv" });
      document.body.appendChild(a); a.click();
      setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    }).catch(function () {});
  }

  function showAlert(a) {
    var bar = $("#alerts-bar");
    var div = el("div", { "class": "alert", "data-testid": "dash-alert" }, "⚠ " + a.rule + ": " + a.message);
    bar.insertBefore(div, bar.firstChild);
    while (bar.children.length > 3) bar.removeChild(bar.lastChild);
  }

  // The event stream cannot send headers: it opens with a one-time ticket (the session token
  // never goes in a URL), and a new ticket whenever the browser gives up reconnecting.
  function listen() {
    if (state.es) state.es.close();
    fetch(ROOT + "/api/v1/auth/ws-ticket", { method: "POST", headers: { authorization: "Bearer " + state.token } })
      .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, status: r.status, body: b }; }); })
      .then(function (r) {
        if (r.status === 401) { signOut(); return; }
        if (!r.ok) { setLive("off"); setTimeout(listen, 3000); return; }
        open(r.body.ticket);
      }, function () { setLive("off"); setTimeout(listen, 3000); });
  }

  function open(ticket) {
    var es = new EventSource(ROOT + "/dashboard/events?ticket=" + encodeURIComponent(ticket));
    state.es = es;
    es.onopen = function () { setLive("on"); };
    es.onerror = function () {
      setLive("off");
      if (es.readyState === 2 && state.es === es) setTimeout(listen, 2000);
    };
    es.addEventListener("refresh", function () { setLive("on"); load(); });
    es.addEventListener("alert", function (e) { try { showAlert(JSON.parse(e.data)); } catch (x) {} });
  }

  function showBoard() {
    $("#login").style.display = "none";
    $("#board").style.display = "grid";
    $("#signout").style.display = "inline-block";
    load();
    listen();
  }

  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    if (state.es) { state.es.close(); state.es = null; }
    $("#board").style.display = "none";
    $("#signout").style.display = "none";
    $("#login").style.display = "flex";
    setLive(null);
  }

  $("#login").addEventListener("submit", function (ev) {
    ev.preventDefault();
    $("#login-error").textContent = "";
    fetch(ROOT + "/api/v1/auth/login", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: $("#name").value, password: $("#password").value }) })
      .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
      .then(function (r) {
        if (!r.ok) { $("#login-error").textContent = r.body.reason || t("wrong"); return; }
        state.token = r.body.token; sessionStorage.setItem(TOKEN_KEY, state.token); showBoard();
      }).catch(function (e) { $("#login-error").textContent = String(e); });
  });
  $("#signout").addEventListener("click", signOut);
  $("#lang").addEventListener("click", function () {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem(LANG_KEY, state.lang);
    applyI18n(); render();
  });
  document.querySelectorAll("[data-csv]").forEach(function (b) {
    b.addEventListener("click", function () { download(b.getAttribute("data-csv")); });
  });

  var resizing = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(render, 150);
  });

  applyI18n();
  if (state.token) showBoard(); else signOut();
})();
