/* omnidesk web chat widget: plain JavaScript, no build step.
 *
 *   <script src="/chat/widget.js" data-endpoint="/chat" defer></script>
 *
 * Attributes on the script tag:
 *   data-endpoint  where the web chat router is mounted (default: the script's folder)
 *   data-title     the panel title (default "Customer service")
 *   data-token     a visitor token your server issued (WebChat::issue_token); otherwise the widget
 *                  asks /session for an anonymous visitor and keeps it in localStorage
 *   data-open      "true" to show the panel open on load
 *   data-placeholder  the input's placeholder
 *
 * Test hooks: data-testid="chat-launcher", "chat-panel", "chat-input", "chat-send", "chat-status",
 * and "chat-message" on every bubble with data-author="customer|bot|agent|system".
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
  var title = attr("data-title", "Customer service");

  var css =
    ".ods-launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;border:0;border-radius:28px;" +
    "background:#e4393c;color:#fff;padding:14px 20px;font:600 15px system-ui,sans-serif;cursor:pointer;" +
    "box-shadow:0 4px 14px rgba(0,0,0,.2)}" +
    ".ods-panel{position:fixed;right:20px;bottom:84px;z-index:2147483000;width:340px;max-width:calc(100vw - 40px);" +
    "height:480px;max-height:calc(100vh - 120px);display:none;flex-direction:column;background:#fff;" +
    "border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);font:14px system-ui,sans-serif;overflow:hidden}" +
    ".ods-panel.ods-open{display:flex}" +
    ".ods-head{background:#e4393c;color:#fff;padding:12px 14px;font-weight:600;display:flex;justify-content:space-between}" +
    ".ods-status{font-weight:400;font-size:12px;opacity:.9}" +
    ".ods-log{flex:1;overflow-y:auto;padding:12px;background:#f6f6f6;display:flex;flex-direction:column;gap:8px}" +
    ".ods-msg{max-width:80%;padding:8px 11px;border-radius:10px;white-space:pre-wrap;word-wrap:break-word;line-height:1.4}" +
    ".ods-msg[data-author=customer]{align-self:flex-end;background:#e4393c;color:#fff}" +
    ".ods-msg[data-author=bot]{align-self:flex-start;background:#fff;border:1px solid #ddd}" +
    ".ods-msg[data-author=agent]{align-self:flex-start;background:#fff3cd;border:1px solid #f0d98c}" +
    ".ods-msg[data-author=system]{align-self:center;background:none;color:#777;font-size:12px}" +
    ".ods-msg.ods-failed{opacity:.6;border:1px dashed #900}" +
    ".ods-who{display:block;font-size:11px;opacity:.7;margin-bottom:2px}" +
    ".ods-form{display:flex;border-top:1px solid #ddd}" +
    ".ods-input{flex:1;border:0;padding:12px;font:inherit;outline:none}" +
    ".ods-send{border:0;background:#e4393c;color:#fff;padding:0 16px;font:inherit;cursor:pointer}";

  function el(tag, cls, testid) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (testid) e.setAttribute("data-testid", testid);
    return e;
  }

  var style = el("style");
  style.textContent = css;
  var launcher = el("button", "ods-launcher", "chat-launcher");
  launcher.type = "button";
  launcher.textContent = title;
  var panel = el("div", "ods-panel", "chat-panel");
  var head = el("div", "ods-head");
  var headTitle = el("span");
  headTitle.textContent = title;
  var status = el("span", "ods-status", "chat-status");
  status.textContent = "connecting…";
  head.appendChild(headTitle);
  head.appendChild(status);
  var log = el("div", "ods-log", "chat-log");
  log.setAttribute("aria-live", "polite");
  var form = el("form", "ods-form");
  var input = el("input", "ods-input", "chat-input");
  input.type = "text";
  input.autocomplete = "off";
  input.maxLength = 2000;
  input.placeholder = attr("data-placeholder", "Type a message… / 请输入…");
  var send = el("button", "ods-send", "chat-send");
  send.type = "submit";
  send.textContent = "Send";
  form.appendChild(input);
  form.appendChild(send);
  panel.appendChild(head);
  panel.appendChild(log);
  panel.appendChild(form);

  function mount() {
    document.head.appendChild(style);
    document.body.appendChild(panel);
    document.body.appendChild(launcher);
    if (attr("data-open", "false") === "true") panel.classList.add("ods-open");
  }
  launcher.addEventListener("click", function () {
    panel.classList.toggle("ods-open");
    if (panel.classList.contains("ods-open")) input.focus();
  });

  var shown = {}; // message id or client id -> bubble
  var pending = []; // frames waiting for a connection
  var unacked = {}; // client id -> frame sent on the current socket, not yet acknowledged
  var maxTextBytes = 4096; // replaced by the server's limit in its hello frame

  function utf8Bytes(text) {
    if (window.TextEncoder) return new TextEncoder().encode(text).length;
    return unescape(encodeURIComponent(text)).length;
  }

  // A message the server did not take stays on screen, marked refused, with the reason.
  function refuse(clientId, reason) {
    var b = clientId && shown[clientId];
    if (b) b.classList.add("ods-failed");
    delete unacked[clientId];
    bubble("system", reason);
  }

  function transmit(id, frame) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      unacked[id] = frame;
      ws.send(frame);
    } else {
      pending.push([id, frame]);
    }
  }

  function bubble(author, text, key) {
    var b = key && shown[key];
    if (!b) {
      b = el("div", "ods-msg", "chat-message");
      log.appendChild(b);
      if (key) shown[key] = b;
    }
    b.setAttribute("data-author", author);
    b.textContent = "";
    if (author === "agent" || author === "bot") {
      var who = el("span", "ods-who");
      who.textContent = author === "bot" ? "Bot" : "Agent";
      b.appendChild(who);
    }
    b.appendChild(document.createTextNode(text));
    log.scrollTop = log.scrollHeight;
    return b;
  }

  function showMessage(m) {
    var key = m.client_id || m.id;
    var b = bubble(m.author, m.text, key);
    shown[m.id] = b;
    b.setAttribute("data-message-id", m.id);
  }

  var ws = null;
  var retry = 500;

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

  function connect() {
    status.textContent = "connecting…";
    token()
      .then(function (t) {
        var url = new URL(base + "/ws", location.href);
        url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
        url.searchParams.set("token", t);
        ws = new WebSocket(url.href);
        ws.onopen = function () {
          retry = 500;
          status.textContent = "online";
          var queued = pending;
          pending = [];
          queued.forEach(function (p) { transmit(p[0], p[1]); });
        };
        ws.onmessage = function (ev) {
          var f;
          try { f = JSON.parse(ev.data); } catch (e) { return; }
          if (f.type === "hello") {
            if (f.max_text_bytes) maxTextBytes = f.max_text_bytes;
            f.history.forEach(showMessage);
          } else if (f.type === "message") {
            showMessage(f.message);
          } else if (f.type === "ack") {
            delete unacked[f.client_id];
            var b = shown[f.client_id];
            if (b) {
              b.setAttribute("data-message-id", f.message_id);
              b.classList.remove("ods-failed");
              shown[f.message_id] = b;
            }
          } else if (f.type === "error") {
            refuse(f.client_id, f.reason || f.code);
          }
        };
        ws.onclose = function (ev) {
          // 1009: a frame was too big. Whatever was not acknowledged on this socket was not
          // taken: mark it refused. Any other close: send it again on the next socket (the
          // server stores a client id once).
          Object.keys(unacked).forEach(function (id) {
            if (ev.code === 1009) refuse(id, ev.reason || "message too large");
            else pending.push([id, unacked[id]]);
          });
          unacked = {};
          status.textContent = "offline, retrying…";
          ws = null;
          setTimeout(connect, retry);
          retry = Math.min(retry * 2, 15000);
        };
      })
      .catch(function () {
        status.textContent = "offline, retrying…";
        setTimeout(connect, retry);
        retry = Math.min(retry * 2, 15000);
      });
  }

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "c-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    var id = newId();
    bubble("customer", text, id);
    var size = utf8Bytes(text);
    if (size > maxTextBytes) {
      refuse(id, "message too long: " + size + " bytes, the limit is " + maxTextBytes);
      return; // the text stays in the box to be shortened
    } else {
      transmit(id, JSON.stringify({ type: "message", client_id: id, text: text }));
    }
    input.value = "";
    input.focus();
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { mount(); connect(); });
  } else {
    mount();
    connect();
  }
})();
