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

  // Colleagues' names by id (for notes), from the desk's presence list.
  var names = {}, colleagues = [];
  function loadNames(then) {
    api("GET", "/api/v1/presence").then(function (r) {
      if (!r.ok) return;
      colleagues = r.body.items || [];
      colleagues.forEach(function (a) { names[a.id] = a.name; });
      if (then) then();
    });
  }
  // The transfer form's choice of colleagues: those online first, never oneself.
  function fillTransfer() {
    var sel = $("transfer-to");
    if (!sel) return;
    var keep = sel.value;
    var me = state.me && state.me.id;
    var list = colleagues.filter(function (a) { return a.id !== me; })
      .sort(function (a, b) { return (a.presence === "online" ? 0 : 1) - (b.presence === "online" ? 0 : 1) || a.name.localeCompare(b.name); });
    sel.innerHTML = '<option value="">Transfer to…</option>' + list.map(function (a) {
      return '<option value="' + esc(a.id) + '">' + esc(a.name + (a.presence === "online" ? "" : " (" + a.presence + ")")) + "</option>";
    }).join("");
    sel.value = keep;
  }
  // The tab's title counts unread conversations, so an agent in another tab sees work arrive.
  var baseTitle = document.title;
  function updateTitle() {
    var n = state.order.filter(function (id) { return state.convs[id] && state.convs[id].unread; }).length;
    document.title = (n ? "(" + n + ") " : "") + baseTitle;
  }

  function renderList() {
    updateTitle();
    var box = $("convs");
    box.innerHTML = "";
    var words = ($("search").value || "").trim().toLowerCase();
    state.order.forEach(function (id) {
      var v = state.convs[id];
      var last = v.customer.history[v.customer.history.length - 1];
      if (words && !matchesSearch(v, words)) return;
      var el = document.createElement("div");
      el.className = "conv" + (state.active === id ? " active" : "");
      el.setAttribute("data-testid", "agent-conversation");
      el.setAttribute("data-conversation-id", id);
      el.innerHTML = '<div class="who">' + esc(customerName(v)) + (v.mentioned ? '<span class="tag">@ mentioned</span>' : "") + (v.unread ? '<span class="unread" data-testid="agent-unread" aria-label="' + Number(v.unread) + ' unread">' + Number(v.unread) + "</span>" : "") +
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
    // What the agent was typing in the header's forms survives a new message.
    var kept = renderLog.conv === state.active && $("transfer-note")
      ? { to: $("transfer-to").value, note: $("transfer-note").value, subject: $("ticket-subject").value,
          open: !!($("customer360") && $("customer360").open) } : null;
    renderLog.conv = state.active;
    $("info").innerHTML = "<strong>" + esc(customerName(v)) + "</strong> · tier " + esc(cu.tier) +
      " · " + v.customer.identities.map(function (i) { return esc(i.kind + ":" + i.external_id); }).join(", ") +
      ' <button id="resolve" data-testid="agent-resolve">Resolve</button>' +
      '<div id="tickets" data-testid="agent-tickets"></div>' +
      '<form id="newticket"><input id="ticket-subject" data-testid="agent-ticket-subject" placeholder="Ticket subject (e.g. parcel lost)">' +
      '<button data-testid="agent-open-ticket">Open ticket</button></form>' +
      '<form id="transfer"><select id="transfer-to" data-testid="agent-transfer-to" aria-label="Transfer to"></select>' +
      '<input id="transfer-note" data-testid="agent-transfer-note" placeholder="Note for your colleague" aria-label="Note for your colleague">' +
      '<button data-testid="agent-transfer">Transfer</button></form>';
    fillTransfer();
    if (kept) { $("transfer-to").value = kept.to; $("transfer-note").value = kept.note; $("ticket-subject").value = kept.subject; }
    $("transfer-to").onfocus = function () { loadNames(fillTransfer); };
    $("transfer").onsubmit = function (ev) {
      ev.preventDefault();
      var to = $("transfer-to").value, conv = state.active;
      if (!to || !conv) return;
      api("POST", "/api/v1/conversations/" + conv + "/transfer", { agent: to, note: $("transfer-note").value.trim() || null }).then(function (r) {
        if (!r.ok) { $("status").textContent = "⚠ " + (r.body.reason || "not transferred"); return; }
        $("status").textContent = "Transferred to " + (names[to] || "a colleague");
        delete state.convs[conv];
        state.order = state.order.filter(function (i) { return i !== conv; });
        if (state.active === conv) state.active = state.order[0] || null;
        renderList(); renderLog();
      });
    };
    $("resolve").onclick = function () { send({ type: "resolve", conversation_id: state.active }); };
    // A conversation a colleague asked for help with is theirs to resolve or ticket.
    if (v.mentioned || v.readonly) { $("resolve").hidden = true; $("newticket").hidden = true; $("transfer").hidden = true; }
    $("newticket").onsubmit = function (ev) {
      ev.preventDefault();
      var subject = $("ticket-subject").value.trim();
      if (!subject) return;
      send({ type: "open_ticket", conversation_id: state.active, subject: subject });
      $("ticket-subject").value = "";
    };
    renderTickets(v);
    renderCsat(v);
    renderCustomer(v, kept && kept.open);
    v.customer.history.forEach(function (m) {
      var el = document.createElement("div");
      var role = m.author.role;
      el.className = "msg" + (m.direction === "internal" ? " internal" : "");
      el.setAttribute("data-testid", "agent-message");
      el.setAttribute("data-author", role);
      var who = role === "agent" && m.author.agent ? (m.author.agent === (state.me && state.me.id) ? "you" : (names[m.author.agent] || "agent")) : role;
      var body = esc(text(m));
      if (m.direction === "internal") body = body.replace(/@([^\s@,.;:!?，。；：！？]+)/g, '<span class="mention">@$1</span>');
      var rating = isRating(m);
      if (rating) el.className += " rating";
      el.innerHTML = '<span class="meta">' + esc(who + (rating ? " · satisfaction rating" : m.direction === "internal" ? " · internal note" : "") + " · " + m.channel + " · " + new Date(m.created_at).toLocaleTimeString()) + "</span>" + body;
      log.appendChild(el);
    });
    log.scrollTop = log.scrollHeight;
    $("text").disabled = !!v.readonly;
    document.querySelector("#reply button").disabled = !!v.readonly;
  }

  // A customer's satisfaction rating after a resolve: the engine keeps it in the conversation as
  // the customer's note "CSAT ★★★★☆ 4/5: comment", one per conversation.
  function isRating(m) {
    return m.direction === "internal" && m.author.role === "customer" && /^csat:/.test(m.provider_message_id || "");
  }
  function renderCsat(v) {
    var last = v.customer.history.filter(isRating).pop();
    if (!last) return;
    var t = text(last), score = /(\d)\/5/.exec(t), comment = t.replace(/^CSAT [★☆]+ \d\/5:? ?/, "");
    var box = document.createElement("div");
    box.className = "csat" + (score && Number(score[1]) <= 2 ? " low" : "");
    box.setAttribute("data-testid", "agent-csat");
    box.setAttribute("data-score", score ? score[1] : "");
    box.innerHTML = "Last CSAT: <b>" + esc(score ? score[1] + "/5" : "?") + "</b> " + esc(t.replace(/^CSAT ([★☆]+).*$/, "$1")) +
      (comment ? " · “" + esc(comment) + "”" : "") + ' <span class="meta">' +
      esc(new Date(last.created_at).toLocaleString() + (last.conversation === v.conversation.id ? " · this conversation" : "")) + "</span>";
    $("info").appendChild(box);
  }

  // The customer at a glance: every channel identity, and every conversation of theirs (the
  // history spans them all), newest first.
  function renderCustomer(v, open) {
    if (v.readonly) return;
    var byConv = {}, order = [];
    v.customer.history.forEach(function (m) {
      if (!byConv[m.conversation]) { byConv[m.conversation] = { first: m.created_at, n: 0, channel: m.channel }; order.push(m.conversation); }
      byConv[m.conversation].n += 1;
    });
    var box = document.createElement("details");
    box.id = "customer360";
    box.setAttribute("data-testid", "agent-customer");
    box.innerHTML = "<summary>Customer: " + v.customer.identities.length + " identit" + (v.customer.identities.length === 1 ? "y" : "ies") +
      ", " + order.length + " conversation" + (order.length === 1 ? "" : "s") + "</summary>" +
      '<div class="ids">' + v.customer.identities.map(function (i) {
        return '<span class="id" data-testid="agent-customer-identity">' + esc(i.kind) + " · " + esc(i.external_id) + "</span>";
      }).join("") + "</div>" +
      '<ol class="past">' + order.reverse().map(function (id) {
        var c = byConv[id];
        return '<li data-testid="agent-customer-conversation">' + esc(new Date(c.first).toLocaleString()) + " · " + esc(c.channel) + " · " +
          c.n + " messages" + (id === v.conversation.id ? " (this one)" : "") + "</li>";
      }).join("") + "</ol>";
    box.open = !!open;
    $("info").appendChild(box);
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
    var helping = !!(state.convs[id] && state.convs[id].mentioned);
    if ($("as-note").checked !== helping) { $("as-note").checked = helping; $("as-note").onchange(); }
    renderList();
    renderLog();
    $("text").focus();
  }

  // Customers' names by conversation, kept after a conversation leaves the live list.
  var seenNames = {};
  function upsert(v) {
    var id = v.conversation.id;
    seenNames[id] = customerName(v);
    if (!state.convs[id]) state.order.unshift(id);
    state.convs[id] = v;
    if (!state.active) state.active = id;
  }

  function renderQueue(view) {
    var q = view.items || [];
    $("qcount").textContent = view.total;
    document.querySelector("[data-filter=queue]").textContent = "Unassigned" + (view.total ? " (" + view.total + ")" : "");
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
        upsert(f.conversation);
        // A conversation that just arrived is unread unless it is the one open.
        state.convs[f.conversation.conversation.id].unread = state.active !== f.conversation.conversation.id;
        renderList(); if (state.active === f.conversation.conversation.id) renderLog();
      } else if (f.type === "message") {
        var v = state.convs[f.conversation_id];
        if (!v) return;
        if (v.customer.history.some(function (m) { return m.id === f.message.id; })) return;
        v.customer.history.push(f.message);
        if (state.active !== f.conversation_id) v.unread = (Number(v.unread) || 0) + 1;
        renderList(); if (state.active === f.conversation_id) renderLog();
      } else if (f.type === "mention") {
        var mid = f.conversation.conversation.id;
        var had = state.convs[mid], was = state.active;
        upsert(f.conversation);
        // A mention waits to be opened: it does not take over the screen.
        state.active = was;
        state.convs[mid].mentioned = !had || had.mentioned || f.conversation.conversation.assignee !== (state.me && state.me.id);
        if (state.active !== mid) state.convs[mid].unread = true;
        showMention(f);
        renderList(); renderLog();
      } else if (f.type === "tickets") {
        var tv = state.convs[f.conversation_id];
        if (!tv) return;
        tv.tickets = f.tickets;
        if (state.active === f.conversation_id) renderTickets(tv);
      } else if (f.type === "queue") {
        renderQueue(f.queue);
      } else if (f.type === "transferred") {
        // Gone to a colleague: it leaves this list (a colleague helping keeps it to read).
        var tv2 = state.convs[f.conversation_id];
        if (tv2 && !tv2.mentioned) {
          delete state.convs[f.conversation_id];
          state.order = state.order.filter(function (i) { return i !== f.conversation_id; });
          if (state.active === f.conversation_id) state.active = state.order[0] || null;
          renderList(); renderLog();
        }
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

  function showMention(f) {
    var box = $("mentions");
    var card = document.createElement("div");
    card.className = "mention-card";
    card.setAttribute("data-testid", "agent-mention");
    card.innerHTML = "<span>@ " + esc(f.from || "A colleague") + ": " + esc(text(f.message)) + '</span><button type="button" data-testid="agent-mention-open">Open</button>';
    card.querySelector("button").onclick = function () { box.removeChild(card); select(f.conversation.conversation.id); };
    box.appendChild(card);
    $("status").textContent = "@ " + (f.from || "") + " mentioned you";
  }

  function showLogin() { $("login").style.display = "flex"; $("desk").style.display = "none"; }
  function showDesk() { $("login").style.display = "none"; $("desk").style.display = "flex"; connect(); loadRole(); loadNames(); }

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

  $("as-note").onchange = function () {
    $("reply").className = $("as-note").checked ? "note" : "";
    $("text").placeholder = $("as-note").checked ? "Internal note… (@name mentions a colleague)" : "Reply… (/ for canned replies)";
  };
  $("reply").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var t = $("text").value.trim();
    if (!t || !state.active) return;
    if ($("as-note").checked) {
      // Notes go through the REST API and come back on the event stream like any message.
      var conv = state.active;
      $("text").value = "";
      api("POST", "/api/v1/conversations/" + conv + "/notes", { text: t }).then(function (r) {
        if (!r.ok) { if (!$("text").value) $("text").value = t; $("status").textContent = "⚠ " + (r.body.reason || "note not saved"); }
      });
      return;
    }
    $("compliance").hidden = true;
    sendReply(state.active, t, false);
    $("text").value = "";
    $("canned-note").hidden = true;
  });



  // Filters: the agent's own conversations (live), the queue, and lists read from the API (all
  // the caller may see; resolved ones) to open and read; the search narrows every list.
  var filter = "mine", listed = [];
  function matchesSearch(v, words) {
    if (customerName(v).toLowerCase().indexOf(words) >= 0) return true;
    return v.customer.history.some(function (m) { return m.direction !== "internal" && text(m).toLowerCase().indexOf(words) >= 0; });
  }
  function setFilter(f) {
    filter = f;
    Array.prototype.forEach.call(document.querySelectorAll("#filters button"), function (b) {
      b.setAttribute("aria-selected", String(b.getAttribute("data-filter") === f));
    });
    document.querySelector('[data-section=mine]').hidden = f !== "mine";
    document.querySelector('[data-section=queue]').hidden = f !== "queue";
    document.querySelector('[data-section=list]').hidden = f !== "all" && f !== "resolved";
    if (f === "all" || f === "resolved") loadList();
  }
  function loadList() {
    var f = filter;
    $("list-title").textContent = f === "all" ? "All conversations" : "Resolved";
    api("GET", "/api/v1/conversations?limit=100" + (f === "resolved" ? "&state=resolved" : "")).then(function (r) {
      if (filter !== f) return;
      listed = (r.ok && r.body.items) || [];
      renderOthers();
    });
  }
  function renderOthers() {
    var words = ($("search").value || "").trim().toLowerCase();
    var box = $("others");
    var items = listed.filter(function (c) {
      var v = state.convs[c.id];
      return !words || (v ? matchesSearch(v, words) : String(c.id).indexOf(words) >= 0 || (c.state || "").indexOf(words) >= 0 ||
        (seenNames[c.id] || "").toLowerCase().indexOf(words) >= 0);
    });
    box.innerHTML = items.length ? "" : '<div class="queued">Nothing here</div>';
    items.forEach(function (c) {
      var v = state.convs[c.id];
      var el = document.createElement("div");
      el.className = "conv" + (state.active === c.id ? " active" : "");
      el.setAttribute("data-testid", "agent-listed-conversation");
      el.setAttribute("data-conversation-id", c.id);
      el.innerHTML = '<div class="who">' + esc(v ? customerName(v) : seenNames[c.id] || ((c.route && c.route.channel) || "conversation") + " · " + String(c.id).slice(-8)) +
        '<span class="state">' + esc(c.state) + "</span></div>" + '<div class="last">' + esc(new Date(c.created_at).toLocaleString()) + "</div>";
      el.onclick = function () { openListed(c); };
      box.appendChild(el);
    });
  }
  // A conversation from a list opens read-only when it is not one of the agent's live ones.
  function openListed(c) {
    if (state.convs[c.id] && !state.convs[c.id].readonly) { setFilter("mine"); select(c.id); return; }
    api("GET", "/api/v1/conversations/" + c.id + "/messages?limit=200").then(function (r) {
      if (!r.ok) { $("status").textContent = "⚠ " + (r.body.reason || "not readable"); return; }
      var view = { conversation: c, readonly: true, tickets: [],
        customer: { customer: { display_name: seenNames[c.id] || null, tier: "—" }, identities: [], history: r.body.items || [] } };
      state.convs[c.id] = view;
      state.active = c.id;
      renderOthers(); renderLog();
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("#filters button"), function (b) {
    b.onclick = function () { setFilter(b.getAttribute("data-filter")); };
  });
  $("search").addEventListener("input", function () { renderList(); renderOthers(); });

  // Canned replies: "/" in the reply box searches them; picking one fills in its variables for
  // the open conversation (the server asks the shop only about this customer's orders), and the
  // agent reads, edits and sends it as any reply (the compliance rules apply on sending).
  var canned = { items: [], sel: 0, timer: null, role: null };
  function loadRole() {
    api("GET", "/api/v1/me").then(function (r) {
      if (r.ok) { canned.role = r.body.role; $("canned-shared-label").hidden = r.body.role === "agent"; }
    });
  }
  function pickerOpen() { return !$("canned-pick").hidden; }
  function closePicker() { $("canned-pick").hidden = true; canned.items = []; $("text").setAttribute("aria-expanded", "false"); }
  function renderPicker() {
    var box = $("canned-pick");
    if (!canned.items.length) {
      box.innerHTML = '<li class="none" aria-disabled="true">No canned reply matches</li>';
    } else {
      box.innerHTML = canned.items.map(function (r, i) {
        return '<li role="option" data-testid="agent-canned-option" data-shortcut="' + esc(r.shortcut) + '" aria-selected="' + (i === canned.sel) + '" data-i="' + i + '">' +
          '<span class="sc">/' + esc(r.shortcut) + "</span>" + esc(r.title) + (r.owner ? "" : '<span class="shared">team</span>') +
          '<span class="tx">' + esc(r.text) + "</span></li>";
      }).join("");
    }
    box.hidden = false;
    $("text").setAttribute("aria-expanded", "true");
    Array.prototype.forEach.call(box.querySelectorAll("li[data-i]"), function (li) {
      li.onmousedown = function (ev) { ev.preventDefault(); useCanned(canned.items[+li.getAttribute("data-i")]); };
    });
  }
  function searchCanned(words) {
    api("GET", "/api/v1/canned?limit=20&q=" + encodeURIComponent(words)).then(function (r) {
      if (!r.ok || $("text").value.charAt(0) !== "/") return;
      canned.items = r.body.items || []; canned.sel = 0; renderPicker();
    });
  }
  function useCanned(r) {
    var conv = state.active;
    closePicker();
    if (!r || !conv) return;
    api("POST", "/api/v1/conversations/" + conv + "/expand", { text: r.text }).then(function (x) {
      if (!x.ok) { $("status").textContent = "⚠ " + (x.body.reason || "canned reply not filled in"); return; }
      $("text").value = x.body.text;
      $("text").focus();
      var note = $("canned-note");
      if (x.body.unresolved && x.body.unresolved.length) {
        note.textContent = "Not filled in (edit before sending): " + x.body.unresolved.map(function (u) { return "{" + u + "}"; }).join(", ");
        note.hidden = false;
      } else note.hidden = true;
    });
  }
  $("text").addEventListener("input", function () {
    var v = $("text").value;
    if (v.charAt(0) !== "/") { closePicker(); return; }
    clearTimeout(canned.timer);
    canned.timer = setTimeout(function () { searchCanned(v.slice(1).trim()); }, 120);
  });
  $("text").addEventListener("keydown", function (ev) {
    if (!pickerOpen()) return;
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      if (!canned.items.length) return;
      canned.sel = (canned.sel + (ev.key === "ArrowDown" ? 1 : canned.items.length - 1)) % canned.items.length;
      renderPicker();
    } else if (ev.key === "Enter" || ev.key === "Tab") {
      if (!canned.items.length) return;
      ev.preventDefault();
      useCanned(canned.items[canned.sel]);
    } else if (ev.key === "Escape") { closePicker(); }
  });
  $("text").addEventListener("blur", function () { setTimeout(closePicker, 150); });

  // Managing them: the agent's own, and (supervisors) the team's shared ones.
  function listCanned() {
    var q = $("canned-search").value.trim();
    var all = canned.role && canned.role !== "agent" ? "&all=true" : "";
    api("GET", "/api/v1/canned?limit=200" + all + "&q=" + encodeURIComponent(q)).then(function (r) {
      var items = (r.ok && r.body.items) || [];
      var mine = state.me && state.me.id;
      $("canned-list").innerHTML = items.length ? items.map(function (c, i) {
        var editable = canned.role !== "agent" || c.owner === mine;
        return '<li data-testid="agent-canned-item" data-shortcut="' + esc(c.shortcut) + '"><span class="body"><strong>/' + esc(c.shortcut) + "</strong> " + esc(c.title) +
          (c.owner ? (c.owner === mine ? "" : " · another agent's") : " · team") + '<span class="tx">' + esc(c.text) + "</span></span>" +
          (editable ? '<button type="button" data-edit="' + i + '">Edit</button><button type="button" data-del="' + i + '" data-testid="agent-canned-delete">Delete</button>' : "") + "</li>";
      }).join("") : "<li>No canned replies yet: add one below.</li>";
      Array.prototype.forEach.call($("canned-list").querySelectorAll("button"), function (b) {
        var c = items[+(b.getAttribute("data-edit") || b.getAttribute("data-del"))];
        b.onclick = b.hasAttribute("data-edit") ? function () { editCanned(c); } : function () {
          api("DELETE", "/api/v1/canned/" + c.id).then(function (x) {
            if (!x.ok) $("canned-error").textContent = x.body.reason || "not deleted";
            listCanned();
          });
        };
      });
    });
  }
  function editCanned(c) {
    $("canned-id").value = c ? c.id : "";
    $("canned-shortcut").value = c ? c.shortcut : "";
    $("canned-title-input").value = c ? c.title : "";
    $("canned-text").value = c ? c.text : "";
    $("canned-shared").checked = !!(c && !c.owner);
    $("canned-shared").disabled = !!c;
    $("canned-error").textContent = "";
    $("canned-shortcut").focus();
  }
  $("canned-open").onclick = function () { editCanned(null); listCanned(); $("canned-panel").showModal(); };
  $("canned-close").onclick = function () { $("canned-panel").close(); };
  $("canned-new").onclick = function () { editCanned(null); };
  $("canned-search").addEventListener("input", listCanned);
  $("canned-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var id = $("canned-id").value;
    var body = { shortcut: $("canned-shortcut").value.trim(), title: $("canned-title-input").value.trim(), text: $("canned-text").value };
    if (!id) body.shared = $("canned-shared").checked;
    api(id ? "PATCH" : "POST", "/api/v1/canned" + (id ? "/" + id : ""), body).then(function (r) {
      if (!r.ok) { $("canned-error").textContent = r.body.reason || "not saved"; return; }
      editCanned(null); listCanned();
    });
  });

  if (state.token) showDesk(); else showLogin();
})();
