(function () {
  "use strict";
  // Where the desk is mounted ("" at the root, "/support" when nested in another app): the
  // server renders it into the page.
  var ROOT = (document.querySelector('meta[name="omnidesk-base"]') || { content: "" }).content;
  var $ = function (id) { return document.getElementById(id); };
  var state = { convs: {}, order: [], active: null, me: null, ws: null, offers: {}, pending: {}, token: sessionStorage.getItem("omnidesk.agent.token") };

  function esc(s) { var d = document.createElement("div"); d.textContent = s == null ? "" : String(s); return d.innerHTML; }
  function text(m) {
    var c = m.content || {};
    if (c.type === "text") return c.text;
    if (c.type === "image" || c.type === "video") return (c.caption ? c.caption + " " : "") + c.url;
    if (c.type === "file") return c.name + " " + c.url;
    if (c.type === "location") return (c.label || "") + " (" + c.latitude + ", " + c.longitude + ")";
    if (c.type === "rich_card") return c.title + (c.body ? "\n" + c.body : "");
    return JSON.stringify(c);
  }
  function customerName(v) {
    var cu = v.customer.customer;
    if (cu.display_name) return cu.display_name;
    var ids = v.customer.identities;
    return ids.length ? ids[0].kind + ":" + ids[0].external_id.slice(0, 14) : "customer";
  }

  function renderList() {
    var box = $("convs");
    box.innerHTML = "";
    state.order.forEach(function (id) {
      var v = state.convs[id];
      var last = v.customer.history[v.customer.history.length - 1];
      var el = document.createElement("div");
      el.className = "conv" + (state.active === id ? " active" : "");
      el.setAttribute("data-testid", "agent-conversation");
      el.setAttribute("data-conversation-id", id);
      el.innerHTML = '<div class="who">' + esc(customerName(v)) + (v.unread ? '<span class="unread"></span>' : "") +
        '</div><div class="last">' + esc(last ? text(last) : "") + "</div>";
      el.onclick = function () { select(id); };
      box.appendChild(el);
    });
  }

  function renderLog() {
    var log = $("log");
    log.innerHTML = "";
    var v = state.convs[state.active];
    if (!v) { $("info").innerHTML = '<span id="empty">Select a conversation</span>'; return; }
    var cu = v.customer.customer;
    $("info").innerHTML = "<strong>" + esc(customerName(v)) + "</strong> · tier " + esc(cu.tier) +
      " · " + v.customer.identities.map(function (i) { return esc(i.kind + ":" + i.external_id); }).join(", ") +
      ' <button id="resolve" data-testid="agent-resolve">Resolve</button>' +
      '<div id="tickets" data-testid="agent-tickets"></div>' +
      '<form id="newticket"><input id="ticket-subject" data-testid="agent-ticket-subject" placeholder="Ticket subject (e.g. parcel lost)">' +
      '<button data-testid="agent-open-ticket">Open ticket</button></form>';
    $("resolve").onclick = function () { send({ type: "resolve", conversation_id: state.active }); };
    $("newticket").onsubmit = function (ev) {
      ev.preventDefault();
      var subject = $("ticket-subject").value.trim();
      if (!subject) return;
      send({ type: "open_ticket", conversation_id: state.active, subject: subject });
      $("ticket-subject").value = "";
    };
    renderTickets(v);
    v.customer.history.forEach(function (m) {
      var el = document.createElement("div");
      var role = m.author.role;
      el.className = "msg" + (m.direction === "internal" ? " internal" : "");
      el.setAttribute("data-testid", "agent-message");
      el.setAttribute("data-author", role);
      el.innerHTML = '<span class="meta">' + esc(role + (m.direction === "internal" ? " (internal)" : "") + " · " + m.channel + " · " + new Date(m.created_at).toLocaleTimeString()) + "</span>" + esc(text(m));
      log.appendChild(el);
    });
    log.scrollTop = log.scrollHeight;
    $("text").disabled = false;
    document.querySelector("#reply button").disabled = false;
  }

  function countdown(line) {
    if (line.met_at) return line.metric.replace("_", " ") + " met";
    if (line.paused) return line.metric.replace("_", " ") + " paused";
    if (!line.due_at) return "";
    var mins = Math.round((new Date(line.due_at) - Date.now()) / 60000);
    var label = line.metric.replace("_", " ") + (mins >= 0 ? " due in " + mins + " min" : " overdue by " + (-mins) + " min");
    return label + " (" + new Date(line.due_at).toLocaleTimeString() + ")";
  }

  function renderTickets(v) {
    var box = $("tickets");
    if (!box || !v) return;
    box.innerHTML = (v.tickets || []).map(function (t) {
      var k = t.ticket;
      var lines = t.sla.map(function (l) {
        var mins = l.due_at ? (new Date(l.due_at) - Date.now()) / 60000 : 1e9;
        var cls = l.breached || mins < 0 ? "sla breached" : (mins < 5 ? "sla warn" : "sla");
        return '<span class="' + cls + '" data-testid="agent-sla">' + esc(countdown(l)) + "</span>";
      }).join("");
      return '<div class="ticket" data-testid="agent-ticket" data-number="' + k.number + '">#' + k.number + " " +
        esc(k.subject) + " · " + esc(k.status) + (k.group ? " · " + esc(k.group) : "") + lines + "</div>";
    }).join("");
  }
  setInterval(function () { renderTickets(state.convs[state.active]); }, 15000);

  function select(id) {
    state.active = id;
    if (state.convs[id]) state.convs[id].unread = false;
    renderList();
    renderLog();
    $("text").focus();
  }

  function upsert(v) {
    var id = v.conversation.id;
    if (!state.convs[id]) state.order.unshift(id);
    state.convs[id] = v;
    if (!state.active) state.active = id;
  }

  function renderQueue(view) {
    var q = view.items || [];
    $("qcount").textContent = view.total;
    $("queue").innerHTML = q.map(function (i) {
      var tags = [i.channel].concat(i.skills || []);
      if (i.language) tags.push(i.language);
      if (i.vip) tags.push("VIP");
      return '<div class="queued" data-testid="agent-queued" data-conversation-id="' + esc(i.conversation) + '">' +
        '<button class="take" data-testid="agent-take" data-id="' + esc(i.conversation) + '">Take</button>#' + (i.position + 1) +
        " · " + esc(i.priority) + ' · <span class="tags">' + esc(tags.join(", ")) + "</span><br>waiting since " +
        new Date(i.since).toLocaleTimeString() + "</div>";
    }).join("");
    Array.prototype.forEach.call(document.querySelectorAll("#queue .take"), function (b) {
      b.onclick = function () { send({ type: "take", conversation_id: b.getAttribute("data-id") }); };
    });
  }

  function renderOffers() {
    var ids = Object.keys(state.offers);
    $("offers").innerHTML = ids.map(function (id) {
      var o = state.offers[id], v = o.conversation;
      var secs = Math.max(0, Math.round((new Date(o.expires_at) - Date.now()) / 1000));
      var last = v.customer.history.filter(function (m) { return m.author.role === "customer"; }).pop();
      return '<div class="offer" data-testid="agent-offer" data-conversation-id="' + esc(id) + '">' +
        '<span class="left" data-testid="agent-offer-countdown">' + secs + ' s</span><div class="who">' + esc(customerName(v)) + "</div>" +
        '<div class="why">' + esc(last ? text(last) : v.conversation.skills.join(", ")) + "</div>" +
        '<button class="accept" data-testid="agent-offer-accept" data-id="' + esc(id) + '">Accept</button>' +
        '<button class="reject" data-testid="agent-offer-reject" data-id="' + esc(id) + '">Reject</button></div>';
    }).join("");
    Array.prototype.forEach.call(document.querySelectorAll("#offers button"), function (b) {
      b.onclick = function () { send({ type: b.className, conversation_id: b.getAttribute("data-id") }); };
    });
  }
  setInterval(function () { if (Object.keys(state.offers).length) renderOffers(); }, 1000);

  function showPresence(presence, reason) {
    $("presence").value = presence === "away" ? "away" : "online";
    $("away-note").textContent = reason ? "Away: " + reason : "";
  }
  $("presence").onchange = function () { send({ type: "presence", presence: $("presence").value }); showPresence($("presence").value); };

  function send(frame) { if (state.ws && state.ws.readyState === 1) state.ws.send(JSON.stringify(frame)); }

  function signedOut() {
    state.token = null; state.me = null; sessionStorage.removeItem("omnidesk.agent.token"); showLogin();
  }

  // The REST API: the session token goes in a header, never in a URL.
  function api(method, path, body) {
    var opts = { method: method, headers: { authorization: "Bearer " + state.token } };
    if (body !== undefined) { opts.headers["content-type"] = "application/json"; opts.body = JSON.stringify(body); }
    return fetch(ROOT + path, opts).then(function (r) {
      if (r.status === 204) return { ok: true, status: 204, body: {} };
      return r.json().then(function (b) { return { ok: r.ok, status: r.status, body: b }; },
        function () { return { ok: r.ok, status: r.status, body: {} }; });
    });
  }

  // Each socket opens with a fresh one-time ticket; a session that ended signs the console out.
  function connect() {
    if (!state.token) return;
    api("POST", "/api/v1/auth/ws-ticket").then(function (r) {
      if (r.status === 401) { signedOut(); return; }
      if (!r.ok) { $("status").textContent = "○ offline"; setTimeout(connect, 3000); return; }
      open(r.body.ticket);
    }, function () { $("status").textContent = "○ offline"; setTimeout(connect, 3000); });
  }

  function open(ticket) {
    var url = new URL(ROOT + "/agent/ws", location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("ticket", ticket);
    var ws = new WebSocket(url.href);
    state.ws = ws;
    ws.onopen = function () { $("status").textContent = "● online"; };
    ws.onclose = function () {
      $("status").textContent = "○ offline";
      if (state.ws === ws && state.token) setTimeout(connect, 1500);
    };
    ws.onmessage = function (ev) {
      var f = JSON.parse(ev.data);
      if (f.type === "welcome") {
        state.me = f.agent; $("me").textContent = f.agent.name;
        state.convs = {}; state.order = [];
        f.conversations.slice().reverse().forEach(upsert);
        state.offers = {};
        (f.offers || []).forEach(function (o) { state.offers[o.conversation.conversation.id] = o; });
        showPresence(f.agent.presence);
        renderOffers(); renderQueue(f.queue); renderList(); renderLog();
      } else if (f.type === "offer") {
        state.offers[f.offer.conversation.conversation.id] = f.offer; renderOffers();
      } else if (f.type === "offer_closed") {
        delete state.offers[f.conversation_id]; renderOffers();
        $("status").textContent = f.outcome === "expired" ? "⌛ an offer expired" : "";
      } else if (f.type === "presence") {
        showPresence(f.presence, f.reason);
      } else if (f.type === "assigned") {
        delete state.offers[f.conversation.conversation.id]; renderOffers();
        upsert(f.conversation); state.convs[f.conversation.conversation.id].unread = true;
        renderList(); if (state.active === f.conversation.conversation.id) renderLog();
      } else if (f.type === "message") {
        var v = state.convs[f.conversation_id];
        if (!v) return;
        if (v.customer.history.some(function (m) { return m.id === f.message.id; })) return;
        v.customer.history.push(f.message);
        if (state.active !== f.conversation_id) v.unread = true;
        renderList(); if (state.active === f.conversation_id) renderLog();
      } else if (f.type === "tickets") {
        var tv = state.convs[f.conversation_id];
        if (!tv) return;
        tv.tickets = f.tickets;
        if (state.active === f.conversation_id) renderTickets(tv);
      } else if (f.type === "queue") {
        renderQueue(f.queue);
      } else if (f.type === "resolved") {
        delete state.convs[f.conversation_id];
        state.order = state.order.filter(function (i) { return i !== f.conversation_id; });
        if (state.active === f.conversation_id) state.active = state.order[0] || null;
        renderList(); renderLog();
      } else if (f.type === "ack") {
        delete state.pending[f.client_id];
      } else if (f.type === "error") {
        var refused = f.client_id && state.pending[f.client_id];
        if (refused) {
          delete state.pending[f.client_id];
          // The text comes back so nothing the agent wrote is lost.
          if (!$("text").value) $("text").value = refused.text;
        }
        if (f.code === "compliance" && refused) showCompliance(f.compliance, refused);
        else $("status").textContent = "⚠ " + f.reason;
      }
    };
  }

  function showLogin() { $("login").style.display = "flex"; $("desk").style.display = "none"; }
  function showDesk() { $("login").style.display = "none"; $("desk").style.display = "flex"; connect(); }

  $("signout").addEventListener("click", function () {
    var ws = state.ws; state.ws = null;
    api("POST", "/api/v1/auth/logout").then(function () {}, function () {});
    if (ws) ws.close();
    signedOut();
  });

  $("login").addEventListener("submit", function (ev) {
    ev.preventDefault();
    fetch(ROOT + "/api/v1/auth/login", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: $("name").value, password: $("password").value }) })
      .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
      .then(function (r) {
        if (!r.ok) { $("login-error").textContent = r.body.reason || "sign-in failed"; return; }
        state.token = r.body.token; sessionStorage.setItem("omnidesk.agent.token", state.token); showDesk();
      });
  });

  function newClientId() { return crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random(); }
  function sendReply(conversation, t, confirm) {
    var id = newClientId();
    state.pending[id] = { text: t, conversation: conversation };
    send({ type: "reply", conversation_id: conversation, client_id: id, text: t, confirm: !!confirm });
  }
  // What the compliance rules found in a refused reply: blocked phrases must be edited out; a
  // warning can be sent anyway after the agent has read it.
  function showCompliance(verdict, refused) {
    var box = $("compliance");
    var hits = (verdict && verdict.hits) || [];
    var blocked = hits.some(function (h) { return h.action === "block"; });
    var seen = {};
    var list = hits.filter(function (h) { if (seen[h.phrase]) return false; seen[h.phrase] = 1; return true; })
      .map(function (h) { return "<mark>" + esc(h.found) + "</mark>" + (h.found !== h.phrase ? " (" + esc(h.phrase) + ")" : ""); }).join(", ");
    box.className = blocked ? "block" : "warn";
    box.innerHTML = blocked
      ? "Not sent: your reply contains forbidden wording: " + list + ". Please rephrase."
      : "Check before sending: " + list + ' <button type="button" data-testid="agent-compliance-send">Send anyway</button>';
    box.hidden = false;
    var again = box.querySelector("button");
    if (again) again.onclick = function () {
      box.hidden = true;
      if ($("text").value.trim() === refused.text) $("text").value = "";
      sendReply(refused.conversation, refused.text, true);
    };
  }

  $("reply").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var t = $("text").value.trim();
    if (!t || !state.active) return;
    $("compliance").hidden = true;
    sendReply(state.active, t, false);
    $("text").value = "";
  });

  if (state.token) showDesk(); else showLogin();
})();
