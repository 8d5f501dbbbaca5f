// omnidesk bot knowledge: plain script, no build step. Entries, retraining and unanswered
// questions through the JSON API under /agent/knowledge (agent sign-in, as the dashboard).
(function () {
  "use strict";
  var TOKEN_KEY = "omnidesk.agent.token";
  var LANG_KEY = "omnidesk.knowledge.lang";
  // Where the desk is mounted ("" at the root, "/support" when nested in another app): the
  // server renders it into the page.
  var ROOT = (document.querySelector('meta[name="omnidesk-base"]') || { content: "" }).content;
  var BASE = ROOT + "/agent/knowledge";
  var state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    lang: localStorage.getItem(LANG_KEY) || ((navigator.language || "").toLowerCase().indexOf("zh") === 0 ? "zh" : "en"),
    entries: [], total: 0, q: "", sel: null, draft: null, status: null, clusters: null, covered: {},
    tab: "entries", poll: null, searchTimer: null
  };

  var T = {
    en: {
      title: "Bot knowledge", retrain: "Retrain", console: "Agent console", dashboard: "Dashboard",
      sign_out: "Sign out", sign_in_title: "Supervisor sign-in", sign_in: "Sign in",
      sign_in_hint: "Sign in with an agent account (Alice or Bob in the demo), as for the dashboard. Supervisor roles are not separate yet: any agent may edit.",
      name: "Name", password: "Password", wrong: "Wrong name or password",
      tab_entries: "FAQ entries", tab_unanswered: "Unanswered questions",
      search: "Search ids, phrasings and answers", new_entry: "New entry", back: "‹ Entries",
      pick_entry: "Pick an entry to edit, or add a new one.", f_id: "Id",
      id_hint: "Letters, digits, _ or -; it names the intent in reports and cannot change later.",
      f_phrasings: "Training phrasings", phr_hint: "Ways customers ask this, in Chinese and English. Each phrasing belongs to one entry.",
      add_phrasing_ph: "Add a way customers ask it, then Enter", add: "Add",
      f_answer_zh: "Answer in Chinese", f_answer_en: "Answer in English",
      answer_hint: "At least one; a question in the other language gets the one there is.",
      f_skills: "Skills for a hand-over", skills_ph: "e.g. after-sales, logistics (optional)",
      save: "Save", cancel: "Cancel", delete: "Delete", new_title: "New entry",
      n_entries: "{n} of {total}", n_phr: "({n})", no_match: "No entry matches.",
      phrasings_n: "{n} phrasings", no_answer: "(no answer)",
      saved: "Saved. Retrain to put it live.", deleted: "Deleted. Retrain to put it live.",
      confirm_delete: "Delete entry {id}? The bot stops answering it after the next retrain.",
      unsaved: "Discard the changes to this entry?",
      st_training: "Training…", st_ready: "Serving revision {r}", st_pending: "Edits not trained yet",
      st_failed: "Training failed",
      banner_pending: "Edits are saved. The bot keeps answering with the model of revision {s} until you retrain (edits are at revision {k}).",
      banner_training: "Training revision {k} in the background; the bot answers with revision {s} until the new model is ready.",
      banner_failed: "The last training failed, the previous model keeps answering: {e}",
      banner_memory: "Edits are kept in memory only (in-memory or PostgreSQL database without a faq file): set faq in the configuration to keep them.",
      took: "last training took {s} s", retrain_started: "Training started; the current model answers meanwhile.",
      retrain_done: "The new model is live.",
      un_note: "{q} questions the bot could not answer, in {g} groups of similar wordings, most asked first. Turn a group into an entry, add it to an entry as phrasings, or mark it as not for the bot.",
      un_none: "No unanswered questions. Questions the bot cannot answer appear here, grouped.",
      asked: "asked {n}×", last_seen: "last asked {t}",
      to_entry: "New entry from these", to_phr: "Add as phrasings", pick_target: "Entry…",
      oos: "Not for the bot", dismiss: "Ignore", covered_by: "already in {e}",
      added_phr: "Added to {e}. Retrain to put it live.", marked_oos: "Marked as not for the bot.",
      dismissed: "Ignored.", pick_first: "Choose an entry first.",
      e_phrasing_in_use: "This phrasing already trains entry {e}; a phrasing belongs to one entry.",
      e_oos: "This phrasing is listed as a question the bot should not answer.",
      e_duplicate_id: "There is already an entry {e}: edit it, or choose another id.",
      e_payload_too_large: "Too much text in one request.", e_network: "The service did not answer; try again.",
      e_storage: "The knowledge file could not be written; nothing was changed.",
      e_stale: "Someone else changed this entry since you opened it. Copy your changes, reopen the entry and edit again.",
      e_forbidden: "The compliance rules forbid “{p}”: the bot would never send this answer. Reword it.",
      w_phrases: "Saved, but the compliance rules warn about “{p}” in this answer."
    },
    zh: {
      title: "机器人知识库", retrain: "重新训练", console: "坐席工作台", dashboard: "仪表盘",
      sign_out: "退出", sign_in_title: "主管登录", sign_in: "登录",
      sign_in_hint: "使用坐席账号登录（演示：Alice 或 Bob），与仪表盘相同。主管角色尚未单独区分：任何坐席都可编辑。",
      name: "用户名", password: "密码", wrong: "用户名或密码错误",
      tab_entries: "问答条目", tab_unanswered: "未解答问题",
      search: "搜索 ID、问法和答案", new_entry: "新建条目", back: "‹ 条目列表",
      pick_entry: "选择一个条目进行编辑，或新建条目。", f_id: "ID",
      id_hint: "字母、数字、_ 或 -；用于报表中的意图名称，创建后不可修改。",
      f_phrasings: "训练问法", phr_hint: "客户的各种问法，中英文均可。每个问法只能属于一个条目。",
      add_phrasing_ph: "输入一种问法，按回车添加", add: "添加",
      f_answer_zh: "中文答案", f_answer_en: "英文答案",
      answer_hint: "至少填写一个；另一种语言的提问会收到已有的答案。",
      f_skills: "转人工所需技能", skills_ph: "例如 after-sales, logistics（可选）",
      save: "保存", cancel: "取消", delete: "删除", new_title: "新建条目",
      n_entries: "{n} / {total}", n_phr: "（{n}）", no_match: "没有匹配的条目。",
      phrasings_n: "{n} 个问法", no_answer: "（无答案）",
      saved: "已保存。重新训练后生效。", deleted: "已删除。重新训练后生效。",
      confirm_delete: "删除条目 {id}？下次训练后机器人将不再回答此问题。",
      unsaved: "放弃对此条目的修改？",
      st_training: "训练中…", st_ready: "当前版本 {r}", st_pending: "有未训练的修改",
      st_failed: "训练失败",
      banner_pending: "修改已保存。重新训练之前，机器人继续使用版本 {s} 的模型回答（知识库已到版本 {k}）。",
      banner_training: "正在后台训练版本 {k}；新模型就绪前，机器人继续使用版本 {s} 回答。",
      banner_failed: "上次训练失败，原模型继续回答：{e}",
      banner_memory: "修改只保存在内存中（内存数据库或未配置 faq 文件的 PostgreSQL）：请在配置中设置 faq 以持久保存。",
      took: "上次训练用时 {s} 秒", retrain_started: "已开始训练；训练期间当前模型继续回答。",
      retrain_done: "新模型已上线。",
      un_note: "机器人未能回答的问题共 {q} 条，按相似问法分为 {g} 组，提问最多的在前。可将一组问题新建为条目、添加为某条目的问法，或标记为机器人不回答。",
      un_none: "暂无未解答问题。机器人答不上来的问题会分组显示在这里。",
      asked: "被问 {n} 次", last_seen: "最近一次：{t}",
      to_entry: "新建为条目", to_phr: "添加为问法", pick_target: "选择条目…",
      oos: "机器人不回答", dismiss: "忽略", covered_by: "已属于 {e}",
      added_phr: "已添加到 {e}。重新训练后生效。", marked_oos: "已标记为机器人不回答。",
      dismissed: "已忽略。", pick_first: "请先选择条目。",
      e_phrasing_in_use: "该问法已属于条目 {e}；每个问法只能属于一个条目。",
      e_oos: "该问法已被列为机器人不回答的问题。",
      e_duplicate_id: "已存在条目 {e}：请编辑该条目，或换一个 ID。",
      e_payload_too_large: "单次提交的内容过多。", e_network: "服务没有响应，请重试。",
      e_storage: "知识库文件写入失败，未做任何修改。",
      e_stale: "打开此条目后，其他人已修改了它。请复制您的修改，重新打开条目后再编辑。",
      e_forbidden: "合规规则禁止使用“{p}”：机器人不会发出此答案，请修改措辞。",
      w_phrases: "已保存，但合规规则提示此答案含有“{p}”。",
      f_e_id: "ID 只能由 1 到 64 个字母、数字、_ 或 - 组成，且不能是 oos。",
      f_e_answer: "请至少填写一个答案（中文或英文）。",
      f_e_phrasings: "至少需要一个有效问法（不能只有空格或标点，最多 300 字）。",
      f_e_skills: "技能是不含空格的单词，最多 40 个字符。",
      f_e_answer_zh: "答案最多 4000 字。", f_e_answer_en: "答案最多 4000 字。"
    }
  };
  function t(k, vars) {
    var d = T[state.lang] || T.en;
    var s = d[k] !== undefined ? d[k] : (T.en[k] !== undefined ? T.en[k] : k);
    if (vars) for (var v in vars) s = s.split("{" + v + "}").join(vars[v]);
    return s;
  }
  function $(sel) { return document.querySelector(sel); }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) { for (var k in attrs) { if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]); } }
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function norm(s) { return String(s || "").toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(Boolean).join(" "); }

  function toast(msg) {
    var b = $("#toast"); b.textContent = msg; b.classList.add("on");
    clearTimeout(toast.timer); toast.timer = setTimeout(function () { b.classList.remove("on"); }, 3200);
  }

  // One API call: resolves to {ok, status, body}; a 401 signs out.
  function api(method, path, body) {
    var opts = { method: method, headers: { authorization: "Bearer " + state.token } };
    if (body !== undefined) { opts.headers["content-type"] = "application/json"; opts.body = JSON.stringify(body); }
    return fetch(BASE + path, opts).then(function (r) {
      if (r.status === 401) { signOut(); throw new Error("signed out"); }
      return r.json().catch(function () { return {}; }).then(function (b) { return { ok: r.ok, status: r.status, body: b }; });
    });
  }

  // A refusal in the page's language: the code and field choose the message.
  function errorText(b) {
    b = b || {};
    if (b.error === "phrasing_in_use") return b.entry === "oos" ? t("e_oos") : t("e_phrasing_in_use", { e: b.entry });
    if (b.error === "duplicate_id") return t("e_duplicate_id", { e: b.entry });
    if (b.error === "payload_too_large") return t("e_payload_too_large");
    if (b.error === "storage") return t("e_storage");
    if (b.error === "stale") return t("e_stale");
    if (b.error === "forbidden_phrase") return t("e_forbidden", { p: (b.phrases || []).join("、") });
    if (state.lang === "zh" && b.field && T.zh["f_e_" + b.field]) return T.zh["f_e_" + b.field];
    var r = b.reason || t("e_network");
    return r.charAt(0).toUpperCase() + r.slice(1);
  }

  function applyI18n() {
    document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
    document.title = t("title") + " · omnidesk";
    document.querySelectorAll("[data-i18n]").forEach(function (e) { e.textContent = t(e.getAttribute("data-i18n")); });
    document.querySelectorAll("[data-i18n-placeholder]").forEach(function (e) { e.placeholder = t(e.getAttribute("data-i18n-placeholder")); });
    $("#lang").textContent = state.lang === "zh" ? "English" : "中文";
  }
  function renderAll() { applyI18n(); renderStatus(); renderList(); renderEditor(); renderClusters(); }

  // ---- entries ----
  function loadEntries() {
    return api("GET", "/entries" + (state.q ? "?q=" + encodeURIComponent(state.q) : "")).then(function (r) {
      if (!r.ok) return;
      state.entries = r.body.entries; state.total = r.body.total;
      renderList(); renderClusters();
    }).catch(function () {});
  }

  function renderList() {
    var box = $("#entries"); box.innerHTML = "";
    $("#n-entries").textContent = state.total ? "(" + state.total + ")" : "";
    if (!state.entries.length) { box.appendChild(el("div", { class: "empty" }, t("no_match"))); return; }
    state.entries.forEach(function (e) {
      var row = el("div", { class: "entry" + (state.sel === e.id ? " sel" : ""), "data-testid": "kb-entry", "data-id": e.id });
      row.appendChild(el("span", { class: "n" }, t("phrasings_n", { n: e.phrasings.length })));
      row.appendChild(el("div", { class: "id" }, e.id));
      row.appendChild(el("div", { class: "q" }, e.phrasings.slice(0, 3).join(" · ")));
      var a = state.lang === "zh" ? (e.answer_zh || e.answer_en) : (e.answer_en || e.answer_zh);
      row.appendChild(el("div", { class: "a" }, a || t("no_answer")));
      row.addEventListener("click", function () { open(e.id); });
      box.appendChild(row);
    });
  }

  function entry(id) {
    for (var i = 0; i < state.entries.length; i++) if (state.entries[i].id === id) return state.entries[i];
    return null;
  }

  function dirty() {
    var d = state.draft; if (!d) return false;
    readForm();
    return JSON.stringify(d.base) !== JSON.stringify(snapshot(d));
  }
  function snapshot(d) { return [d.id, d.phrasings, d.zh, d.en, d.skills]; }

  function open(id) {
    if (state.draft && dirty() && !confirm(t("unsaved"))) return;
    var e = entry(id); if (!e) return;
    state.sel = id;
    state.draft = { isNew: false, id: e.id, version: e.version, phrasings: e.phrasings.slice(), zh: e.answer_zh || "", en: e.answer_en || "", skills: e.skills.join(", "), from: [], fresh: {} };
    state.draft.base = snapshot(state.draft);
    document.body.classList.add("editing");
    renderList(); renderEditor(); clearErrors();
    window.scrollTo(0, 0);
  }

  function newDraft(phrasings, from, id) {
    if (state.draft && dirty() && !confirm(t("unsaved"))) return false;
    state.sel = null;
    state.draft = { isNew: true, id: id || "", phrasings: phrasings || [], zh: "", en: "", skills: "", from: from || [], fresh: {} };
    (phrasings || []).forEach(function (p) { state.draft.fresh[p] = 1; });
    state.draft.base = snapshot(state.draft);
    document.body.classList.add("editing");
    showTab("entries"); renderList(); renderEditor(); clearErrors();
    window.scrollTo(0, 0);
    (id ? $("#f-zh") : $("#f-id")).focus();
    return true;
  }

  function closeEditor() {
    state.draft = null; state.sel = null;
    document.body.classList.remove("editing");
    renderList(); renderEditor();
  }

  function readForm() {
    var d = state.draft; if (!d) return;
    if (d.isNew) d.id = $("#f-id").value.trim();
    d.zh = $("#f-zh").value; d.en = $("#f-en").value; d.skills = $("#f-skills").value;
  }

  function renderEditor() {
    var d = state.draft;
    $("#ed-empty").hidden = !!d; $("#ed-body").hidden = !d;
    $("#ed-title").textContent = d ? (d.isNew ? t("new_title") : d.id) : "";
    if (!d) return;
    $("#f-id").value = d.id; $("#f-id").readOnly = !d.isNew;
    $("#f-zh").value = d.zh; $("#f-en").value = d.en; $("#f-skills").value = d.skills;
    $("#delete").hidden = d.isNew;
    renderPhrasings();
  }

  function renderPhrasings() {
    var d = state.draft, ul = $("#phrasings"); ul.innerHTML = "";
    $("#n-phr").textContent = t("n_phr", { n: d.phrasings.length });
    d.phrasings.forEach(function (p, i) {
      var li = el("li", { "data-testid": "kb-phrasing", class: d.fresh[p] ? "new" : null });
      li.appendChild(el("span", null, p));
      var x = el("button", { type: "button", title: "×", "aria-label": "remove " + p }, "×");
      x.addEventListener("click", function () { readForm(); d.phrasings.splice(i, 1); renderPhrasings(); });
      li.appendChild(x); ul.appendChild(li);
    });
  }

  function addPhrasing() {
    var input = $("#f-phr"), v = input.value.trim(), d = state.draft;
    if (!v || !d) return;
    readForm();
    if (!d.phrasings.some(function (p) { return norm(p) === norm(v); })) { d.phrasings.push(v); d.fresh[v] = 1; }
    input.value = ""; renderPhrasings(); input.focus();
  }

  function clearErrors() {
    document.querySelectorAll(".ferr").forEach(function (e) { e.textContent = ""; });
    document.querySelectorAll(".editor .bad").forEach(function (e) { e.classList.remove("bad"); });
    $("#ed-error").textContent = "";
  }

  function showError(b) {
    var msg = errorText(b);
    var slot = b && b.field ? document.querySelector('.ferr[data-field="' + b.field + '"]') : null;
    if (slot) {
      slot.textContent = msg;
      var input = { id: "#f-id", phrasings: "#f-phr", answer_zh: "#f-zh", answer_en: "#f-en", answer: "#f-zh", skills: "#f-skills" }[b.field];
      if (input) { $(input).classList.add("bad"); if (b.field === "answer") $("#f-en").classList.add("bad"); }
      slot.scrollIntoView({ block: "center" });
    } else {
      $("#ed-error").textContent = msg;
      $("#ed-error").scrollIntoView({ block: "center" });
    }
  }

  function save(ev) {
    ev.preventDefault();
    var d = state.draft; if (!d) return;
    readForm(); clearErrors();
    var body = {
      phrasings: d.phrasings, answer_zh: d.zh, answer_en: d.en,
      skills: d.skills.split(/[,，\s]+/).filter(Boolean), from_unanswered: d.from
    };
    if (d.isNew) body.id = d.id; else body.version = d.version;
    $("#save").disabled = true;
    var call = d.isNew ? api("POST", "/entries", body) : api("PUT", "/entries/" + encodeURIComponent(d.id), body);
    call.then(function (r) {
      if (!r.ok) { showError(r.body); return; }
      var warned = (r.body.warnings || []).map(function (w) { return w.phrases.join("、"); }).join("、");
      toast(warned ? t("w_phrases", { p: warned }) : t("saved"));
      var id = r.body.entry.id;
      state.draft = null;
      return Promise.all([loadEntries(), loadStatus(), d.from.length ? loadClusters() : null]).then(function () {
        state.draft = null; open(id);
      });
    }).catch(function (e) { if (String(e).indexOf("signed out") < 0) $("#ed-error").textContent = t("e_network"); })
      .then(function () { $("#save").disabled = false; });
  }

  function del() {
    var d = state.draft; if (!d || d.isNew) return;
    if (!confirm(t("confirm_delete", { id: d.id }))) return;
    clearErrors();
    api("DELETE", "/entries/" + encodeURIComponent(d.id)).then(function (r) {
      if (!r.ok) { showError(r.body); return; }
      toast(t("deleted")); closeEditor(); loadEntries(); loadStatus();
    }).catch(function () { $("#ed-error").textContent = t("e_network"); });
  }

  // ---- status and retraining ----
  function loadStatus() {
    return api("GET", "/status").then(function (r) {
      if (!r.ok) return;
      var was = state.status;
      state.status = r.body; renderStatus();
      if (was && was.training && !r.body.training) { toast(r.body.state === "failed" ? t("st_failed") : t("retrain_done")); }
      schedule();
    }).catch(function () { schedule(); });
  }

  function schedule() {
    clearTimeout(state.poll);
    if (!state.token) return;
    var training = state.status && state.status.training;
    state.poll = setTimeout(function () {
      loadStatus();
      if (state.tab === "unanswered" && !training) loadClusters();
    }, training ? 1000 : 10000);
  }

  function renderStatus() {
    var s = state.status, pill = $("#status"), banner = $("#banner");
    if (!s) { pill.className = "status"; pill.querySelector("b").textContent = ""; banner.textContent = ""; return; }
    var mode = s.training ? "training" : s.state === "failed" ? "failed" : s.untrained_edits ? "pending" : "ready";
    pill.className = "status " + mode;
    pill.setAttribute("data-state", s.state);
    var label = mode === "training" ? t("st_training") : mode === "failed" ? t("st_failed") : mode === "pending" ? t("st_pending") : t("st_ready", { r: s.serving_revision });
    pill.querySelector("b").textContent = label;
    pill.title = s.last_train_secs !== null && s.last_train_secs !== undefined ? t("took", { s: s.last_train_secs.toFixed(1) }) : "";
    $("#retrain").disabled = !!s.training;
    $("#retrain").textContent = t("retrain");
    var msg = "", bad = false;
    if (s.training) msg = t("banner_training", { s: s.serving_revision, k: s.knowledge_revision });
    else if (s.state === "failed") { msg = t("banner_failed", { e: s.last_error }); bad = true; }
    else if (s.untrained_edits) msg = t("banner_pending", { s: s.serving_revision, k: s.knowledge_revision });
    if (!s.saved_to) msg = (msg ? msg + " " : "") + t("banner_memory");
    if (msg && s.last_train_secs !== null && s.last_train_secs !== undefined && !s.training) msg += " (" + t("took", { s: s.last_train_secs.toFixed(1) }) + ")";
    banner.textContent = msg; banner.className = "banner" + (bad ? " bad" : "");
    $("#n-unanswered").textContent = s.counts && s.counts.unanswered ? "(" + s.counts.unanswered + ")" : "";
  }

  function retrain() {
    $("#retrain").disabled = true;
    api("POST", "/retrain").then(function (r) {
      if (r.ok) { state.status = r.body; renderStatus(); toast(t("retrain_started")); }
      else toast(errorText(r.body));
      schedule();
    }).catch(function () { $("#retrain").disabled = false; });
  }

  // ---- unanswered questions ----
  function loadClusters() {
    return api("GET", "/unanswered").then(function (r) {
      if (!r.ok) return;
      state.clusters = r.body; state.covered = r.body.covered || {};
      renderClusters();
    }).catch(function () {});
  }

  function ago(iso) {
    var s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
    var zh = state.lang === "zh";
    if (s < 60) return zh ? "刚刚" : "just now";
    if (s < 3600) return Math.round(s / 60) + (zh ? " 分钟前" : " min ago");
    if (s < 86400) return Math.round(s / 3600) + (zh ? " 小时前" : " h ago");
    return new Date(iso).toLocaleDateString(zh ? "zh-CN" : "en-GB");
  }

  function suggestId(texts) {
    for (var i = 0; i < texts.length; i++) {
      var words = texts[i].toLowerCase().match(/[a-z0-9]+/g);
      if (words && words.length) {
        var stop = { do: 1, you: 1, i: 1, can: 1, the: 1, a: 1, an: 1, is: 1, are: 1, my: 1, me: 1, your: 1, to: 1, of: 1, how: 1, what: 1, we: 1 };
        var keep = words.filter(function (w) { return !stop[w]; }).slice(0, 3);
        if (keep.length) return keep.join("_");
      }
    }
    return "";
  }

  function renderClusters() {
    var box = $("#clusters"); if (!box) return;
    box.innerHTML = "";
    var c = state.clusters;
    if (!c) return;
    $("#un-note").textContent = c.clusters.length ? t("un_note", { q: c.questions, g: c.groups }) : "";
    if (!c.clusters.length) { box.appendChild(el("div", { class: "empty" }, t("un_none"))); return; }
    c.clusters.forEach(function (g) {
      var card = el("div", { class: "cluster", "data-testid": "kb-cluster" });
      var top = el("div", { class: "top" });
      top.appendChild(el("span", { class: "rep" }, g.representative));
      top.appendChild(el("span", { class: "count", "data-testid": "kb-cluster-count" }, t("asked", { n: g.count })));
      top.appendChild(el("span", { class: "when" }, t("last_seen", { t: ago(g.last_seen) })));
      card.appendChild(top);
      var ul = el("ul", { class: "chips" });
      var open = [];
      g.examples.forEach(function (x) {
        var owner = state.covered[x];
        var li = el("li", { class: owner ? "covered" : null }, owner ? x + " — " + t("covered_by", { e: owner === "oos" ? t("oos") : owner }) : x);
        ul.appendChild(li);
        if (!owner) open.push(x);
      });
      card.appendChild(ul);
      var row = el("div", { class: "do" });
      var toEntry = el("button", { type: "button", class: "to-entry", "data-testid": "kb-cluster-new" }, t("to_entry"));
      toEntry.addEventListener("click", function () { newDraft(open.slice(), g.examples.slice(), suggestId(g.examples)); });
      var pick = el("select", { "data-testid": "kb-cluster-target" });
      pick.appendChild(el("option", { value: "" }, t("pick_target")));
      allIds().forEach(function (id) { pick.appendChild(el("option", { value: id }, id)); });
      var toPhr = el("button", { type: "button", class: "to-phr", "data-testid": "kb-cluster-add" }, t("to_phr"));
      toPhr.addEventListener("click", function () {
        if (!pick.value) { toast(t("pick_first")); pick.focus(); return; }
        var target = pick.value;
        var call = open.length ? api("POST", "/entries/" + encodeURIComponent(target) + "/phrasings", { texts: open, from_unanswered: true })
          : api("POST", "/unanswered/dismiss", { texts: g.examples });
        call.then(function (r) {
          if (!r.ok) { toast(errorText(r.body)); return; }
          toast(t("added_phr", { e: target })); loadClusters(); loadEntries(); loadStatus();
        });
      });
      var oos = el("button", { type: "button", class: "oos", "data-testid": "kb-cluster-oos" }, t("oos"));
      oos.addEventListener("click", function () {
        var call = open.length ? api("POST", "/out-of-scope", { texts: open }) : api("POST", "/unanswered/dismiss", { texts: g.examples });
        call.then(function (r) {
          if (!r.ok) { toast(errorText(r.body)); return; }
          toast(t("marked_oos")); loadClusters(); loadStatus();
        });
      });
      var dis = el("button", { type: "button", class: "dismiss", "data-testid": "kb-cluster-dismiss" }, t("dismiss"));
      dis.addEventListener("click", function () {
        api("POST", "/unanswered/dismiss", { texts: g.examples }).then(function (r) {
          if (r.ok) { toast(t("dismissed")); loadClusters(); loadStatus(); }
        });
      });
      [toEntry, pick, toPhr, oos, dis].forEach(function (b) { row.appendChild(b); });
      card.appendChild(row);
      box.appendChild(card);
    });
  }

  // Every entry id (the list may be filtered by a search).
  function allIds() {
    return (state.allIds || state.entries.map(function (e) { return e.id; })).slice().sort();
  }
  function loadAllIds() {
    return api("GET", "/entries").then(function (r) {
      if (r.ok) state.allIds = r.body.entries.map(function (e) { return e.id; });
    }).catch(function () {});
  }

  function showTab(tab) {
    state.tab = tab;
    document.querySelectorAll(".tab").forEach(function (b) { b.classList.toggle("sel", b.getAttribute("data-tab") === tab); });
    $("#pane-entries").hidden = tab !== "entries";
    $("#pane-unanswered").hidden = tab !== "unanswered";
    if (tab === "unanswered") { loadAllIds().then(loadClusters); }
  }

  // ---- sign-in ----
  function showApp() {
    document.body.classList.add("in");
    $("#login").style.display = "none";
    loadEntries(); loadStatus(); loadClusters();
  }
  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null; state.status = null; clearTimeout(state.poll);
    document.body.classList.remove("in", "editing");
    $("#login").style.display = "flex";
  }

  $("#login").addEventListener("submit", function (ev) {
    ev.preventDefault();
    $("#login-error").textContent = "";
    fetch(ROOT + "/api/v1/auth/login", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: $("#name").value, password: $("#password").value }) })
      .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
      .then(function (r) {
        if (!r.ok) { $("#login-error").textContent = r.body.reason || t("wrong"); return; }
        state.token = r.body.token; sessionStorage.setItem(TOKEN_KEY, state.token); showApp();
      }).catch(function (e) { $("#login-error").textContent = String(e); });
  });
  $("#signout").addEventListener("click", signOut);
  $("#lang").addEventListener("click", function () {
    if (state.draft) readForm();
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem(LANG_KEY, state.lang);
    renderAll();
  });
  $("#retrain").addEventListener("click", retrain);
  $("#new").addEventListener("click", function () { newDraft(); });
  $("#back").addEventListener("click", function () { if (!dirty() || confirm(t("unsaved"))) closeEditor(); });
  $("#cancel").addEventListener("click", function () { if (!dirty() || confirm(t("unsaved"))) closeEditor(); });
  $("#delete").addEventListener("click", del);
  $("#editor").addEventListener("submit", save);
  $("#add-phr").addEventListener("click", addPhrasing);
  $("#f-phr").addEventListener("keydown", function (ev) { if (ev.key === "Enter") { ev.preventDefault(); addPhrasing(); } });
  $("#search").addEventListener("input", function () {
    clearTimeout(state.searchTimer);
    state.searchTimer = setTimeout(function () { state.q = $("#search").value.trim(); loadEntries(); }, 200);
  });
  document.querySelectorAll(".tab").forEach(function (b) {
    b.addEventListener("click", function () { showTab(b.getAttribute("data-tab")); });
  });

  applyI18n();
  renderEditor();
  if (state.token) showApp(); else signOut();
})();
