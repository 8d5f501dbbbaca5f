/* omnidesk web chat widget: plain JavaScript, no build step.
 *
 *   <script src="/chat/widget.js" data-endpoint="/chat" defer></script>
 *
 * Attributes on the script tag:
 *   data-endpoint  where the web chat router is mounted (default: the script's folder)
 *   data-lang      "zh" or "en": the language of every control, status and error (default: the
 *                  page's <html lang>, else the browser's language; anything not Chinese is English)
 *   data-lang-param  a query parameter of the page's address that names the language
 *                  (e.g. "lang" for ?lang=en), read after data-lang and before <html lang>
 *   data-title     the panel title (default "在线客服" / "Customer service")
 *   data-token     a visitor token your server issued (WebChat::issue_token); otherwise the widget
 *                  asks /session for an anonymous visitor and keeps it in localStorage
 *   data-open      "true" to show the panel open on load
 *   data-placeholder  the input's placeholder
 *   data-ack-timeout  milliseconds to wait for the server to acknowledge a message before it is
 *                  shown as failed, with a retry (default 10000)
 *
 * Nothing the customer writes disappears silently: a text over the server's limit (counted as the
 * server counts it, in UTF-8 bytes) is stopped with a message and stays in the box; a message the
 * server refuses, does not acknowledge in time, or that was in flight when the socket closed is
 * shown as failed with a retry button, never as sent.
 *
 * Test hooks: data-testid="chat-launcher", "chat-panel", "chat-close", "chat-input", "chat-send",
 * "chat-status" (data-state="connecting|online|offline"), "chat-error", "chat-counter",
 * "chat-queue", "chat-option" (quick-reply buttons), "chat-retry", the survey after a resolve
 * ("chat-survey" with data-conversation and, once answered, data-state="done"; "chat-survey-star"
 * with data-score 1-5, "chat-survey-comment", "chat-survey-submit", "chat-survey-error"), and
 * "chat-message" on every
 * bubble with data-author="customer|bot|agent|system" and, for the customer's,
 * data-state="sending|sent|failed".
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var attr = function (name, dflt) {
    var v = script && script.getAttribute(name);
    return v === null || v === undefined || v === "" ? dflt : v;
  };
  var scriptUrl = new URL(script ? script.src : location.href, location.href);
  var endpoint = new URL(
    attr("data-endpoint", scriptUrl.pathname.replace(/\/[^/]*$/, "")),
    location.href
  );
  var base = endpoint.href.replace(/\/$/, "");
  var storageKey = "omnidesk.webchat.token:" + base;

  // ---- Language ------------------------------------------------------------------------------
  var TEXTS = {
    zh: {
      title: "在线客服",
      open: "打开在线客服",
      close: "关闭",
      connecting: "连接中…",
      online: "在线",
      offline: "连接已断开，正在重连…",
      placeholder: "请输入您的问题…",
      inputLabel: "输入消息",
      send: "发送",
      bot: "智能助手",
      agent: "客服",
      you: "我",
      sending: "发送中…",
      sent: "已发送",
      failed: "发送失败",
      retry: "重试",
      edit: "修改",
      log: "聊天记录",
      greeting: "您好！请问有什么可以帮您？可以问订单、物流、退换货等问题。",
      options: "请选择",
      tooLong: function (size, limit) {
        return "消息太长（" + fmt(size) + " 字节，上限 " + fmt(limit) +
          " 字节，约 " + fmt(Math.floor(limit / 3)) + " 个汉字）。请删减后再发送，内容已为您保留。";
      },
      counter: function (size, limit) { return fmt(size) + " / " + fmt(limit) + " 字节"; },
      noAck: "服务器没有确认收到这条消息。",
      lost: "连接中断，这条消息可能没有送达。",
      codes: {
        payload_too_large: "消息太长，服务器未接收。",
        too_complex: "消息格式过于复杂，服务器未接收。",
        invalid_input: "消息无法识别，服务器未接收。",
        rate_limited: "发送太频繁，请稍候再试。",
        unavailable: "客服系统暂时不可用，请稍后重试。",
        internal: "客服系统出错，消息未保存，请重试。",
        unauthenticated: "会话已失效，请刷新页面。",
        other: "消息未被接收。"
      },
      waitSeconds: function (s) { return "请在 " + s + " 秒后重试。"; },
      queue: function (ahead, wait) {
        return "正在排队 · " + (Number(ahead) === 0 ? "下一位就是您" : "您前面还有 " + ahead + " 位") +
          (wait ? " · 预计等待" + wait : "");
      },
      survey: {
        ask: "本次服务您满意吗？",
        scores: ["非常不满意", "不满意", "一般", "满意", "非常满意"],
        star: function (n) { return n + " 星"; },
        comment: "补充说明（选填）",
        commentHint: "还有什么想告诉我们的？（最多 500 字）",
        submit: "提交评价",
        sending: "提交中…",
        thanks: "感谢您的评价！",
        already: "这次会话已经评价过了，谢谢！",
        refused: "无法评价这次会话。",
        failed: "评价没有提交成功，请重试。"
      },
      time: "zh-CN"
    },
    en: {
      title: "Customer service",
      open: "Open customer service chat",
      close: "Close",
      connecting: "Connecting…",
      online: "Online",
      offline: "Disconnected, reconnecting…",
      placeholder: "Type your question…",
      inputLabel: "Message",
      send: "Send",
      bot: "Assistant",
      agent: "Agent",
      you: "You",
      sending: "Sending…",
      sent: "Sent",
      failed: "Not sent",
      retry: "Retry",
      edit: "Edit",
      log: "Conversation",
      greeting: "Hello! How can we help? Ask about orders, delivery, returns and more.",
      options: "Choose one",
      tooLong: function (size, limit) {
        return "Your message is too long (" + fmt(size) + " bytes; the limit is " + fmt(limit) +
          " bytes). Please shorten it; your text is kept.";
      },
      counter: function (size, limit) { return fmt(size) + " / " + fmt(limit) + " bytes"; },
      noAck: "The server did not confirm this message.",
      lost: "The connection dropped; this message may not have arrived.",
      codes: {
        payload_too_large: "The message is too long; the server did not take it.",
        too_complex: "The message is too complex; the server did not take it.",
        invalid_input: "The server could not read this message.",
        rate_limited: "You are sending too fast. Please wait a moment.",
        unavailable: "The service is briefly unavailable. Please retry.",
        internal: "Something went wrong; the message was not saved. Please retry.",
        unauthenticated: "Your session expired. Please reload the page.",
        other: "The message was not taken."
      },
      waitSeconds: function (s) { return "Retry in " + s + " s."; },
      queue: function (ahead, wait) {
        return "In the queue · " + (Number(ahead) === 0 ? "you're next" : ahead + " ahead of you") +
          (wait ? " · about " + wait : "");
      },
      survey: {
        ask: "How satisfied are you with the help you got?",
        scores: ["Very dissatisfied", "Dissatisfied", "Neutral", "Satisfied", "Very satisfied"],
        star: function (n) { return n + (n === 1 ? " star" : " stars"); },
        comment: "Comment (optional)",
        commentHint: "Anything else you'd like to tell us? (up to 500 characters)",
        submit: "Send rating",
        sending: "Sending…",
        thanks: "Thank you for your rating!",
        already: "You have rated this conversation already. Thank you!",
        refused: "This conversation cannot be rated.",
        failed: "Your rating was not sent. Please retry."
      },
      time: "en-GB"
    }
  };
  function pickLang() {
    var param = attr("data-lang-param", "");
    var fromUrl = param ? new URLSearchParams(location.search).get(param) || "" : "";
    var tags = [attr("data-lang", ""), fromUrl, document.documentElement.getAttribute("lang") || ""];
    var nav = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
    tags = tags.concat(nav);
    for (var i = 0; i < tags.length; i++) {
      var t = String(tags[i] || "").toLowerCase();
      if (!t) continue;
      return t.slice(0, 2) === "zh" ? "zh" : "en";
    }
    return "en";
  }
  var lang = pickLang();
  var T = TEXTS[lang];
  function fmt(n) { return Number(n).toLocaleString(T ? T.time : "en-GB"); }
  var title = attr("data-title", T.title);
  var ackTimeout = Number(attr("data-ack-timeout", "10000")) || 10000;

  // ---- Styles: AA contrast (white on #c0161c is 6.2:1), 16 px inputs, full screen on phones --
  var css =
    ".ods-launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;border:0;border-radius:28px;" +
    "background:#c0161c;color:#fff;padding:14px 20px;font:600 16px system-ui,-apple-system,'PingFang SC','Microsoft YaHei',sans-serif;" +
    "cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25)}" +
    ".ods-launcher:focus-visible,.ods-panel button:focus-visible,.ods-input:focus-visible{outline:3px solid #1a56db;outline-offset:2px}" +
    ".ods-panel{position:fixed;right:20px;bottom:84px;z-index:2147483000;width:360px;max-width:calc(100vw - 40px);" +
    "height:540px;max-height:calc(100vh - 120px);display:none;flex-direction:column;background:#fff;color:#1f1f1f;" +
    "border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);font:15px/1.45 system-ui,-apple-system,'PingFang SC','Microsoft YaHei',sans-serif;overflow:hidden}" +
    ".ods-panel.ods-open{display:flex}" +
    ".ods-head{background:#c0161c;color:#fff;padding:10px 8px 10px 14px;display:flex;align-items:center;gap:8px}" +
    ".ods-head h2{margin:0;font-size:16px;font-weight:600;flex:1;min-width:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}" +
    ".ods-status{font-size:13px;white-space:nowrap}" +
    ".ods-status::before{content:'';display:inline-block;width:8px;height:8px;border-radius:50%;margin-right:5px;background:#ffd166;vertical-align:1px}" +
    ".ods-status[data-state=online]::before{background:#7ee2a8}" +
    ".ods-close{border:0;background:transparent;color:#fff;font-size:24px;line-height:1;width:40px;height:40px;border-radius:8px;cursor:pointer}" +
    ".ods-close:hover{background:rgba(255,255,255,.15)}" +
    ".ods-queue{display:none;background:#fff4d6;color:#5c4300;border-bottom:1px solid #f0d98c;padding:8px 14px;font-size:14px}" +
    ".ods-queue.ods-on{display:block}" +
    ".ods-log{flex:1;overflow-y:auto;padding:12px;background:#f4f4f5;display:flex;flex-direction:column;gap:10px}" +
    ".ods-empty{margin:auto 8px;color:#52525b;text-align:center;font-size:14px}" +
    ".ods-log:has(.ods-msg) .ods-empty{display:none}" +
    ".ods-msg{max-width:82%;padding:8px 11px;border-radius:12px;white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.45}" +
    ".ods-msg[data-author=customer]{align-self:flex-end;background:#c0161c;color:#fff;border-bottom-right-radius:4px}" +
    ".ods-msg[data-author=bot]{align-self:flex-start;background:#fff;border:1px solid #d4d4d8;border-bottom-left-radius:4px}" +
    ".ods-msg[data-author=agent]{align-self:flex-start;background:#fff8e1;border:1px solid #e6c65c;border-bottom-left-radius:4px}" +
    ".ods-msg[data-author=system]{align-self:center;max-width:92%;background:none;color:#52525b;font-size:13px;text-align:center;padding:2px 8px}" +
    ".ods-msg[data-state=failed]{background:#fff;color:#1f1f1f;border:1px dashed #b91c1c}" +
    ".ods-msg[data-state=sending]{opacity:.85}" +
    ".ods-meta{display:flex;gap:8px;font-size:12px;margin-bottom:2px;color:#52525b}" +
    ".ods-msg[data-author=customer] .ods-meta{justify-content:flex-end;color:#fff;margin:4px 0 0}" +
    ".ods-msg[data-state=failed] .ods-meta{color:#b91c1c}" +
    ".ods-who{font-weight:600}" +
    ".ods-why{display:block;font-size:13px;color:#b91c1c;margin-top:4px;white-space:normal}" +
    ".ods-acts{display:flex;gap:6px;justify-content:flex-end;margin-top:6px}" +
    ".ods-acts button{border:1px solid #b91c1c;background:#fff;color:#b91c1c;border-radius:6px;padding:4px 10px;font:inherit;font-size:14px;cursor:pointer;min-height:32px}" +
    ".ods-opts{display:flex;flex-direction:column;gap:6px;margin-top:8px}" +
    ".ods-opt{border:1px solid #c0161c;background:#fff;color:#a3131a;border-radius:18px;padding:7px 12px;font:inherit;font-size:15px;text-align:left;cursor:pointer;min-height:36px}" +
    ".ods-opt:hover{background:#fdf0f0}" +
    ".ods-opt:disabled{border-color:#d4d4d8;color:#71717a;background:#fafafa;cursor:default}" +
    ".ods-form{display:flex;align-items:flex-end;gap:6px;border-top:1px solid #d4d4d8;padding:8px;background:#fff}" +
    ".ods-input{flex:1;border:1px solid #a1a1aa;border-radius:8px;padding:9px 10px;font-family:inherit;font-size:16px;line-height:1.35;resize:none;" +
    "max-height:120px;min-height:42px;box-sizing:border-box;color:#1f1f1f;background:#fff}" +
    ".ods-input[aria-invalid=true]{border-color:#b91c1c}" +
    ".ods-send{border:0;border-radius:8px;background:#c0161c;color:#fff;padding:0 16px;min-height:42px;font-family:inherit;font-size:16px;font-weight:600;cursor:pointer}" +
    ".ods-foot{padding:0 10px;background:#fff;font-size:13px}" +
    ".ods-error{color:#b91c1c;padding:6px 0 0}" +
    ".ods-error:empty,.ods-counter:empty{display:none}" +
    ".ods-counter{color:#52525b;text-align:right;padding-top:4px}" +
    ".ods-counter.ods-over{color:#b91c1c;font-weight:600}" +
    ".ods-survey{align-self:stretch;background:#fff;border:1px solid #d4d4d8;border-radius:12px;padding:10px 12px}" +
    ".ods-survey p{margin:0 0 6px;font-weight:600}" +
    ".ods-stars{display:flex;gap:4px;justify-content:space-between}" +
    ".ods-star{flex:1;min-width:40px;min-height:44px;border:1px solid #d4d4d8;background:#fff;border-radius:8px;font-size:24px;line-height:1;color:#a1a1aa;cursor:pointer;padding:0}" +
    ".ods-star[data-on=true]{color:#b45309;border-color:#d97706;background:#fffbeb}" +
    ".ods-score{min-height:1.4em;font-size:13px;color:#52525b;margin:4px 0}" +
    ".ods-survey label{display:block;font-size:13px;color:#3f3f46;margin:4px 0 2px}" +
    ".ods-survey textarea{width:100%;box-sizing:border-box;border:1px solid #a1a1aa;border-radius:8px;padding:8px;font-family:inherit;font-size:16px;resize:vertical;min-height:60px}" +
    ".ods-survey .ods-submit{margin-top:8px;width:100%;min-height:42px;border:0;border-radius:8px;background:#c0161c;color:#fff;font:inherit;font-size:16px;font-weight:600;cursor:pointer}" +
    ".ods-survey .ods-submit:disabled{background:#d4d4d8;color:#52525b;cursor:default}" +
    ".ods-survey .ods-why{margin-top:6px}" +
    ".ods-survey[data-state=done]{text-align:center;color:#166534;font-weight:600}" +
    ".ods-sr{position:absolute;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;clip:rect(0,0,0,0);border:0}" +
    "@media (max-width:480px){.ods-panel{inset:0;right:0;bottom:0;width:100%;max-width:none;height:100%;max-height:none;border-radius:0}" +
    ".ods-panel.ods-open~.ods-launcher,.ods-launcher.ods-hidden{display:none}}";

  function el(tag, cls, testid) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (testid) e.setAttribute("data-testid", testid);
    return e;
  }

  var panelId = "ods-panel-" + Math.random().toString(36).slice(2, 8);
  var style = el("style");
  style.textContent = css;
  var launcher = el("button", "ods-launcher", "chat-launcher");
  launcher.type = "button";
  launcher.textContent = title;
  launcher.setAttribute("aria-label", T.open);
  launcher.setAttribute("aria-controls", panelId);
  launcher.setAttribute("aria-expanded", "false");
  var panel = el("section", "ods-panel", "chat-panel");
  panel.id = panelId;
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", title);
  panel.setAttribute("lang", lang === "zh" ? "zh-CN" : "en");
  var head = el("div", "ods-head");
  var headTitle = el("h2");
  headTitle.textContent = title;
  var status = el("span", "ods-status", "chat-status");
  status.setAttribute("role", "status");
  var closeBtn = el("button", "ods-close", "chat-close");
  closeBtn.type = "button";
  closeBtn.setAttribute("aria-label", T.close);
  closeBtn.textContent = "×";
  head.appendChild(headTitle);
  head.appendChild(status);
  head.appendChild(closeBtn);
  var queue = el("div", "ods-queue", "chat-queue");
  queue.setAttribute("role", "status");
  var log = el("div", "ods-log", "chat-log");
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  log.setAttribute("aria-label", T.log);
  log.tabIndex = 0;
  var empty = el("p", "ods-empty");
  empty.textContent = T.greeting;
  log.appendChild(empty);
  var form = el("form", "ods-form");
  var inputId = panelId + "-input";
  var label = el("label", "ods-sr");
  label.setAttribute("for", inputId);
  label.textContent = T.inputLabel;
  var input = el("textarea", "ods-input", "chat-input");
  input.id = inputId;
  input.rows = 1;
  input.autocomplete = "off";
  input.enterKeyHint = "send";
  // No maxLength: it would cut a long paste without a word. The byte counter below says what
  // the server takes.
  input.placeholder = attr("data-placeholder", T.placeholder);
  var send = el("button", "ods-send", "chat-send");
  send.type = "submit";
  send.textContent = T.send;
  form.appendChild(label);
  form.appendChild(input);
  form.appendChild(send);
  var foot = el("div", "ods-foot");
  var errorBox = el("div", "ods-error", "chat-error");
  errorBox.setAttribute("role", "alert");
  errorBox.id = panelId + "-error";
  var counter = el("div", "ods-counter", "chat-counter");
  counter.setAttribute("aria-live", "polite");
  input.setAttribute("aria-describedby", errorBox.id);
  foot.appendChild(errorBox);
  foot.appendChild(counter);
  panel.appendChild(head);
  panel.appendChild(queue);
  panel.appendChild(log);
  panel.appendChild(form);
  panel.appendChild(foot);

  function setStatus(state) {
    status.setAttribute("data-state", state);
    status.textContent = T[state];
  }
  setStatus("connecting");

  function mount() {
    document.head.appendChild(style);
    document.body.appendChild(panel);
    document.body.appendChild(launcher);
    if (attr("data-open", "false") === "true") openPanel(false);
  }
  // On a phone the open panel covers the page: the page behind it does not scroll.
  var phone = window.matchMedia ? window.matchMedia("(max-width: 480px)") : { matches: false };
  var pageOverflow = null;
  function lockPage(lock) {
    var root = document.documentElement;
    if (lock && phone.matches && pageOverflow === null) {
      pageOverflow = root.style.overflow;
      root.style.overflow = "hidden";
    } else if (!lock && pageOverflow !== null) {
      root.style.overflow = pageOverflow;
      pageOverflow = null;
    }
  }
  function openPanel(focus) {
    panel.classList.add("ods-open");
    launcher.setAttribute("aria-expanded", "true");
    lockPage(true);
    if (focus) input.focus();
  }
  function closePanel() {
    panel.classList.remove("ods-open");
    launcher.setAttribute("aria-expanded", "false");
    lockPage(false);
    launcher.focus();
  }
  launcher.addEventListener("click", function () {
    if (panel.classList.contains("ods-open")) closePanel();
    else openPanel(true);
  });
  closeBtn.addEventListener("click", closePanel);
  panel.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape" && !ev.isComposing) closePanel();
  });

  // ---- State ---------------------------------------------------------------------------------
  var shown = {}; // message id or client id -> bubble
  var outgoing = {}; // client id -> {text, frame, timer, state}
  var maxTextBytes = 4096; // replaced by the server's limits in its hello frame
  var maxFrameBytes = 65536;
  var agentName = null; // learnt from the "joined" / "transferred" notices

  function utf8Bytes(text) {
    if (window.TextEncoder) return new TextEncoder().encode(text).length;
    return unescape(encodeURIComponent(text)).length;
  }

  function timeOf(iso) {
    var d = iso ? new Date(iso) : new Date();
    if (isNaN(d.getTime())) d = new Date();
    var t = el("time");
    t.setAttribute("datetime", d.toISOString());
    t.textContent = d.toLocaleTimeString(T.time, { hour: "2-digit", minute: "2-digit" });
    return t;
  }

  // ---- What the engine says: who joined, where the customer is in the queue ------------------
  // The engine's notices are text (every channel shows them); these match its default wording in
  // both languages. Unmatched (reworded) notices still show as they are.
  var JOINED = [/^(.+?) 已接入，为您服务。$/, /^已为您转接给 (.+?)。$/,
    /^(.+?) has joined and will help you\.$/, /^You have been transferred to (.+?)\.$/];
  var QUEUED = [/您前面还有 (\d+) 位(?:，预计等待(.+?)。)?/, /(\d+) ahead of you(?:, about (.+?) to wait)?/];
  var ENDED = [/^会话已结束/, /^This conversation has been resolved/];
  function noticeOf(text) {
    var i, m;
    for (i = 0; i < JOINED.length; i++) if ((m = JOINED[i].exec(text))) return { joined: m[1] };
    for (i = 0; i < QUEUED.length; i++) if ((m = QUEUED[i].exec(text))) return { ahead: m[1], wait: m[2] };
    for (i = 0; i < ENDED.length; i++) if (ENDED[i].test(text)) return { ended: true };
    return null;
  }
  function showQueue(n) {
    if (n) {
      queue.textContent = T.queue(n.ahead, n.wait ? n.wait.trim() : "");
      queue.classList.add("ods-on");
    } else {
      queue.textContent = "";
      queue.classList.remove("ods-on");
    }
  }

  // ---- Bubbles -------------------------------------------------------------------------------
  function bubble(author, key) {
    var b = key && shown[key];
    if (!b) {
      b = el("div", "ods-msg", "chat-message");
      log.appendChild(b);
      if (key) shown[key] = b;
    }
    b.setAttribute("data-author", author);
    b.textContent = "";
    return b;
  }

  function meta(who, at) {
    var m = el("div", "ods-meta");
    if (who) {
      var w = el("span", "ods-who");
      w.textContent = who;
      m.appendChild(w);
    }
    m.appendChild(timeOf(at));
    return m;
  }

  function disableOldOptions() {
    var olds = log.querySelectorAll(".ods-opt");
    for (var i = 0; i < olds.length; i++) olds[i].disabled = true;
  }

  function endNotice(b, m) {
    b.appendChild(document.createTextNode(m.text));
    b.appendChild(document.createTextNode(" "));
    var t = timeOf(m.at);
    t.className = "ods-sr";
    b.appendChild(t);
  }

  // ---- The survey after a resolve: 1-5 stars and an optional comment, sent once --------------
  var lastEnded = null; // the latest message, if it is a "resolved" notice
  var surveys = {}; // conversation id -> {card, timer}
  var ratedKey = "omnidesk.webchat.rated:" + base;
  function ratedList() {
    try { return JSON.parse(localStorage.getItem(ratedKey) || "[]"); } catch (e) { return []; }
  }
  function markRated(conv) {
    var list = ratedList().filter(function (c) { return c !== conv; });
    list.push(conv);
    try { localStorage.setItem(ratedKey, JSON.stringify(list.slice(-20))); } catch (e) { /* private mode */ }
  }
  function offerSurvey(conv) {
    if (!conv || surveys[conv] || ratedList().indexOf(conv) >= 0) return;
    var S = T.survey;
    var card = el("form", "ods-survey", "chat-survey");
    card.setAttribute("data-conversation", conv);
    var ask = el("p");
    ask.id = panelId + "-ask-" + conv.slice(0, 8);
    ask.textContent = S.ask;
    card.appendChild(ask);
    var stars = el("div", "ods-stars");
    stars.setAttribute("role", "radiogroup");
    stars.setAttribute("aria-labelledby", ask.id);
    var meaning = el("div", "ods-score", "chat-survey-meaning");
    meaning.setAttribute("aria-live", "polite");
    var chosen = 0, buttons = [];
    function choose(n) {
      chosen = n;
      buttons.forEach(function (btn, i) {
        btn.setAttribute("data-on", i < n ? "true" : "false");
        btn.setAttribute("aria-checked", i + 1 === n ? "true" : "false");
        btn.tabIndex = i + 1 === (n || 1) ? 0 : -1;
      });
      meaning.textContent = n ? S.scores[n - 1] : "";
      submit.disabled = !n;
    }
    for (var i = 1; i <= 5; i++) {
      (function (n) {
        var btn = el("button", "ods-star", "chat-survey-star");
        btn.type = "button";
        btn.textContent = "★";
        btn.setAttribute("role", "radio");
        btn.setAttribute("data-score", String(n));
        btn.setAttribute("aria-label", S.star(n) + " · " + S.scores[n - 1]);
        btn.addEventListener("click", function () { choose(n); });
        btn.addEventListener("keydown", function (ev) {
          var next = ev.key === "ArrowRight" || ev.key === "ArrowUp" ? Math.min(5, (chosen || 0) + 1) :
            ev.key === "ArrowLeft" || ev.key === "ArrowDown" ? Math.max(1, (chosen || 2) - 1) : 0;
          if (next) { ev.preventDefault(); choose(next); buttons[next - 1].focus(); }
        });
        buttons.push(btn);
        stars.appendChild(btn);
      })(i);
    }
    card.appendChild(stars);
    card.appendChild(meaning);
    var cl = el("label");
    cl.setAttribute("for", panelId + "-comment-" + conv.slice(0, 8));
    cl.textContent = S.comment;
    var comment = el("textarea", null, "chat-survey-comment");
    comment.id = panelId + "-comment-" + conv.slice(0, 8);
    comment.rows = 2;
    comment.maxLength = 500;
    comment.placeholder = S.commentHint;
    card.appendChild(cl);
    card.appendChild(comment);
    var why = el("span", "ods-why", "chat-survey-error");
    why.setAttribute("role", "alert");
    var submit = el("button", "ods-submit", "chat-survey-submit");
    submit.type = "submit";
    submit.textContent = S.submit;
    card.appendChild(submit);
    card.appendChild(why);
    choose(0);
    card.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (!chosen) return;
      why.textContent = "";
      if (!ws || ws.readyState !== WebSocket.OPEN) { why.textContent = S.failed; return; }
      submit.disabled = true;
      submit.textContent = S.sending;
      var text = comment.value.trim();
      ws.send(JSON.stringify({ type: "rate", conversation: conv, score: chosen, comment: text || null }));
      var s = surveys[conv];
      if (s.timer) clearTimeout(s.timer);
      s.timer = setTimeout(function () { surveyFailed(conv, S.failed); }, ackTimeout);
    });
    surveys[conv] = { card: card, timer: null, submit: submit, why: why, pending: true };
    log.appendChild(card);
    log.scrollTop = log.scrollHeight;
  }
  function surveyDone(conv, text) {
    var s = surveys[conv];
    markRated(conv);
    if (!s) return;
    if (s.timer) clearTimeout(s.timer);
    s.card.textContent = text;
    s.card.setAttribute("data-state", "done");
    s.card.setAttribute("role", "status");
  }
  function surveyFailed(conv, text) {
    var s = surveys[conv];
    if (!s) return;
    if (s.timer) clearTimeout(s.timer);
    s.why.textContent = text;
    s.submit.disabled = false;
    s.submit.textContent = T.survey.submit;
  }
  // The survey a refusal answers: the one waiting for the server (one at a time in practice).
  function waitingSurvey() {
    for (var c in surveys) if (surveys[c].timer && surveys[c].submit.disabled) return c;
    return null;
  }

  function showMessage(m) {
    lastEnded = null;
    var key = m.client_id || m.id;
    if (m.author === "customer") {
      var out = outgoing[key];
      if (out && out.timer) clearTimeout(out.timer);
      delete outgoing[key];
      disableOldOptions(); // options offered before the customer wrote again are spent
      drawCustomer(key, m.text, "sent", null, m.at);
      shown[m.id] = shown[key];
      shown[key].setAttribute("data-message-id", m.id);
      return;
    }
    var b = bubble(m.author, key);
    shown[m.id] = b;
    b.setAttribute("data-message-id", m.id);
    if (m.author === "system") {
      var n = noticeOf(m.text || "");
      if (n && n.joined) { agentName = n.joined; showQueue(null); }
      else if (n && n.ahead) showQueue(n);
      else if (n && n.ended) { showQueue(null); lastEnded = m; return endNotice(b, m); }
      b.appendChild(document.createTextNode(m.text));
      b.appendChild(document.createTextNode(" "));
      var t = timeOf(m.at);
      t.className = "ods-sr";
      b.appendChild(t);
      return;
    }
    if (m.author === "agent") showQueue(null);
    b.appendChild(meta(m.author === "bot" ? T.bot : (agentName || T.agent), m.at));
    var c = m.content || {};
    if (c.type === "rich_card") {
      disableOldOptions();
      b.appendChild(document.createTextNode(c.title || ""));
      if (c.body) b.appendChild(document.createTextNode("\n" + c.body));
      var opts = el("div", "ods-opts");
      opts.setAttribute("role", "group");
      opts.setAttribute("aria-label", T.options);
      (c.buttons || []).forEach(function (btn) {
        var o = el("button", "ods-opt", "chat-option");
        o.type = "button";
        o.textContent = btn.label;
        o.addEventListener("click", function () {
          if (/^https?:\/\//.test(btn.value)) { window.open(btn.value, "_blank", "noopener"); return; }
          submitText(btn.value);
        });
        opts.appendChild(o);
      });
      b.appendChild(opts);
    } else {
      b.appendChild(document.createTextNode(m.text));
    }
    log.scrollTop = log.scrollHeight;
  }

  // A customer's message: sending, sent (acknowledged) or failed (with why, and a retry).
  function drawCustomer(id, text, state, why, at) {
    var b = bubble("customer", id);
    b.setAttribute("data-state", state);
    b.appendChild(document.createTextNode(text));
    var m = el("div", "ods-meta");
    var s = el("span");
    s.textContent = state === "sent" ? "" : T[state];
    if (state !== "sent") m.appendChild(s);
    m.appendChild(timeOf(at));
    b.appendChild(m);
    if (state === "failed") {
      var w = el("span", "ods-why");
      w.textContent = why || T.codes.other;
      b.appendChild(w);
      var acts = el("div", "ods-acts");
      var retryBtn = el("button", null, "chat-retry");
      retryBtn.type = "button";
      retryBtn.textContent = T.retry;
      retryBtn.setAttribute("aria-label", T.retry + ": " + text.slice(0, 40));
      retryBtn.addEventListener("click", function () { retry(id); });
      var editBtn = el("button", null, "chat-edit");
      editBtn.type = "button";
      editBtn.textContent = T.edit;
      editBtn.addEventListener("click", function () { edit(id); });
      acts.appendChild(editBtn);
      acts.appendChild(retryBtn);
      b.appendChild(acts);
    }
    log.scrollTop = log.scrollHeight;
    return b;
  }

  function fail(id, why) {
    var out = outgoing[id];
    if (!out || out.state === "sent") return;
    if (out.timer) clearTimeout(out.timer);
    out.timer = null;
    out.state = "failed";
    drawCustomer(id, out.text, "failed", why);
  }

  function reasonOf(f) {
    var code = f.code || "other";
    if (code === "payload_too_large" && f.size && f.limit) return T.tooLong(f.size, Math.min(f.limit, maxTextBytes));
    var text = T.codes[code] || T.codes.other;
    if (code === "rate_limited" && f.retry_after_secs) text += " " + T.waitSeconds(f.retry_after_secs);
    return text;
  }

  // ---- Sending -------------------------------------------------------------------------------
  function transmit(id) {
    var out = outgoing[id];
    if (!out) return;
    out.state = "sending";
    drawCustomer(id, out.text, "sending");
    if (out.timer) clearTimeout(out.timer);
    out.timer = setTimeout(function () { fail(id, T.noAck); }, ackTimeout);
    if (ws && ws.readyState === WebSocket.OPEN) {
      out.socket = ws;
      ws.send(out.frame);
    } else {
      out.socket = null; // sent when the socket opens, if before the time-out
    }
  }

  function retry(id) {
    var out = outgoing[id];
    if (!out) return;
    if (out.permanent) { edit(id); return; } // as it is, the server would refuse it again
    transmit(id);
  }

  function edit(id) {
    var out = outgoing[id];
    if (!out) return;
    if (out.timer) clearTimeout(out.timer);
    delete outgoing[id];
    var b = shown[id];
    if (b && b.parentNode) b.parentNode.removeChild(b);
    delete shown[id];
    input.value = out.text;
    update();
    input.focus();
  }

  var ws = null;
  var backoff = 500;

  function token() {
    var t = attr("data-token", null);
    if (t) return Promise.resolve(t);
    var saved = null;
    try { saved = localStorage.getItem(storageKey); } catch (e) { /* private mode */ }
    return fetch(base + "/session", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(saved ? { token: saved } : {}),
    })
      .then(function (r) {
        if (!r.ok) throw new Error("session " + r.status);
        return r.json();
      })
      .then(function (s) {
        try { localStorage.setItem(storageKey, s.token); } catch (e) { /* private mode */ }
        return s.token;
      });
  }

  function reconnectLater() {
    setStatus("offline");
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 15000);
  }

  function connect() {
    setStatus("connecting");
    token()
      .then(function (t) {
        var url = new URL(base + "/ws", location.href);
        url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
        url.searchParams.set("token", t);
        var socket = new WebSocket(url.href);
        ws = socket;
        socket.onopen = function () {
          backoff = 500;
          setStatus("online");
          // Messages written while offline go now (their ack timer still runs).
          Object.keys(outgoing).forEach(function (id) {
            var out = outgoing[id];
            if (out.state === "sending" && !out.socket) { out.socket = socket; socket.send(out.frame); }
          });
        };
        socket.onmessage = function (ev) {
          var f;
          try { f = JSON.parse(ev.data); } catch (e) { return; }
          if (f.type === "hello") {
            if (f.max_text_bytes) maxTextBytes = f.max_text_bytes;
            if (f.max_frame_bytes) maxFrameBytes = f.max_frame_bytes;
            f.history.forEach(showMessage);
            if (lastEnded) offerSurvey(lastEnded.conversation);
            update();
          } else if (f.type === "message") {
            showMessage(f.message);
            if (lastEnded) offerSurvey(lastEnded.conversation);
          } else if (f.type === "rated") {
            surveyDone(f.conversation, T.survey.thanks);
          } else if (f.type === "ack") {
            var out = outgoing[f.client_id];
            if (out) {
              if (out.timer) clearTimeout(out.timer);
              delete outgoing[f.client_id];
              var b = drawCustomer(f.client_id, out.text, "sent");
              b.setAttribute("data-message-id", f.message_id);
              shown[f.message_id] = b;
            }
          } else if (f.type === "error" && !f.client_id && waitingSurvey()) {
            var conv = waitingSurvey();
            if (f.code === "already_rated") surveyDone(conv, T.survey.already);
            else surveyFailed(conv, f.code === "invalid_input" ? T.survey.refused : (T.codes[f.code] && f.temporary ? T.codes[f.code] : T.survey.failed));
          } else if (f.type === "error") {
            var why = reasonOf(f);
            if (f.client_id && outgoing[f.client_id]) {
              outgoing[f.client_id].permanent = !f.temporary;
              fail(f.client_id, why);
            } else {
              showError(why);
            }
          }
        };
        socket.onclose = function (ev) {
          if (ws === socket) ws = null;
          // Whatever was in flight on this socket was not acknowledged: failed, with a retry
          // (the server stores a client id once, so a retry never doubles a message). 1009: the
          // frame was too big, so it needs shortening rather than a retry.
          Object.keys(outgoing).forEach(function (id) {
            var out = outgoing[id];
            if (out.state !== "sending" || out.socket !== socket) return;
            if (ev.code === 1009) {
              out.permanent = true;
              fail(id, T.tooLong(utf8Bytes(out.frame), maxFrameBytes));
            } else {
              fail(id, T.lost);
            }
          });
          reconnectLater();
        };
      })
      .catch(reconnectLater);
  }

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "c-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  function showError(text) {
    errorBox.textContent = text || "";
    input.setAttribute("aria-invalid", text ? "true" : "false");
  }

  // Live check of what the server will count: UTF-8 bytes of the text, and of the whole frame.
  function update() {
    var text = input.value;
    var size = utf8Bytes(text.trim());
    var frameSize = size ? utf8Bytes(JSON.stringify({ type: "message", client_id: "c-0000000000000000000000000000000000000", text: text.trim() })) : 0;
    var over = size > maxTextBytes || frameSize > maxFrameBytes;
    counter.textContent = size > maxTextBytes * 0.8 ? T.counter(size, maxTextBytes) : "";
    counter.classList.toggle("ods-over", over);
    if (over) showError(T.tooLong(size, maxTextBytes));
    else if (input.getAttribute("aria-invalid") === "true") showError("");
    // The box grows with the text (up to 120 px); the conversation stays scrolled to its end.
    var atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 120) + "px";
    if (atEnd) log.scrollTop = log.scrollHeight;
    return !over;
  }
  input.addEventListener("input", update);

  // Sends `text` as a new message; false (text kept, error shown) when it is over the limit.
  function submitText(text) {
    text = text.trim();
    if (!text) return false;
    var size = utf8Bytes(text);
    var frame = JSON.stringify({ type: "message", client_id: "", text: text });
    if (size > maxTextBytes || utf8Bytes(frame) + 64 > maxFrameBytes) {
      showError(T.tooLong(size, maxTextBytes));
      return false;
    }
    showError("");
    disableOldOptions();
    var id = newId();
    outgoing[id] = {
      text: text,
      frame: JSON.stringify({ type: "message", client_id: id, text: text }),
      state: "sending",
      timer: null,
      socket: null
    };
    transmit(id);
    return true;
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (!input.value.trim()) return;
    if (!submitText(input.value)) {
      counter.textContent = T.counter(utf8Bytes(input.value.trim()), maxTextBytes);
      counter.classList.add("ods-over");
      input.focus();
      return; // the text stays in the box to be shortened
    }
    input.value = "";
    update();
    input.focus();
  });
  input.addEventListener("keydown", function (ev) {
    // Enter sends, Shift+Enter is a new line; never while an input method is composing.
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
      ev.preventDefault();
      if (form.requestSubmit) form.requestSubmit(send);
      else send.click();
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { mount(); connect(); });
  } else {
    mount();
    connect();
  }
})();
