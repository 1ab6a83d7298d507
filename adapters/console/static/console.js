// The console page: channels, a DM with the bot, threads, a composer with
// @mention, and live updates over server-sent events. Message HTML comes from
// the server already escaped; everything this script writes itself goes
// through textContent.
"use strict";

const state = {
  bot: "cowork", channels: [], users: [], user: "alice", channel: "general",
  thread: null, messages: new Map(), unread: new Map(), source: null,
};
const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method, headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

function dmChannel(user) { return `dm-${user}`; }
function channelLabel(ch) { return ch.startsWith("dm-") ? `${state.bot} (direct message)` : `#${ch}`; }

// -- sidebar ------------------------------------------------------------------

function navItem(channel, label) {
  const li = el("li");
  const a = el("a", "nav-item" + (channel === state.channel ? " active" : ""), label);
  a.href = `#${channel}`;
  a.dataset.channel = channel;
  const n = state.unread.get(channel) || 0;
  if (n) a.append(el("span", "badge-unread", String(n)));
  a.addEventListener("click", (e) => { e.preventDefault(); openChannel(channel); });
  li.append(a);
  return li;
}

function renderSidebar() {
  $("channels").replaceChildren(...state.channels.map((c) => navItem(c, `# ${c}`)));
  $("dms").replaceChildren(navItem(dmChannel(state.user), `● ${state.bot}`));
}

// -- messages -----------------------------------------------------------------

function timeOf(iso) {
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function messageNode(m) {
  const row = el("div", "msg" + (m.bot ? " from-bot" : "") + (m.private ? " private" : ""));
  row.id = `m${m.id}`;
  row.dataset.id = m.id;
  row.append(el("div", "avatar" + (m.bot ? " bot" : ""), m.bot ? "C" : m.user[0].toUpperCase()));
  const main = el("div", "msg-main");
  const head = el("div", "msg-head");
  head.append(el("span", "author", m.bot ? "Cowork" : m.user), el("span", "when", timeOf(m.created_at)));
  if (m.bot) head.append(el("span", "tag", "bot"));
  if (m.private) head.append(el("span", "tag private-tag", "only visible to you"));
  const body = el("div", "msg-body");
  body.innerHTML = m.html; // rendered and escaped by the server
  main.append(head, body);
  row.append(main);
  return row;
}

function threadNode(root, replies) {
  const wrap = el("div", "thread-block");
  wrap.dataset.thread = root.id;
  wrap.append(messageNode(root));
  if (replies.length) {
    const box = el("div", "replies");
    replies.forEach((r) => box.append(messageNode(r)));
    wrap.append(box);
  }
  const reply = el("button", "link-btn reply-btn", replies.length ? `Reply in thread (${replies.length})` : "Reply in thread");
  reply.type = "button";
  reply.addEventListener("click", () => startReply(root.id));
  wrap.append(reply);
  return wrap;
}

function renderMessages() {
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const all = [...state.messages.values()].sort((a, b) => a.id - b.id);
  const roots = all.filter((m) => !m.thread || !state.messages.has(Number(m.thread)));
  const replies = new Map();
  all.filter((m) => m.thread && state.messages.has(Number(m.thread))).forEach((m) => {
    const list = replies.get(Number(m.thread)) || [];
    list.push(m);
    replies.set(Number(m.thread), list);
  });
  if (!all.length) {
    box.replaceChildren(el("p", "empty", `This is the start of ${channelLabel(state.channel)}. Say hello, or mention @${state.bot}.`));
    return;
  }
  box.replaceChildren(...roots.map((r) => threadNode(r, replies.get(r.id) || [])));
  if (atBottom || state.stick) box.scrollTop = box.scrollHeight;
  state.stick = false;
}

async function loadChannel() {
  const q = new URLSearchParams({ channel: state.channel, user: state.user });
  const data = await api("GET", `/api/console/messages?${q}`);
  state.messages = new Map(data.messages.map((m) => [m.id, m]));
  state.stick = true;
  renderMessages();
}

function openChannel(channel) {
  state.channel = channel;
  state.unread.delete(channel);
  cancelReply();
  $("channel-title").textContent = channelLabel(channel);
  $("text").placeholder = channel.startsWith("dm-")
    ? `Message ${state.bot} (no mention needed)` : `Message #${channel} · mention @${state.bot} for the bot`;
  history.replaceState(null, "", `#${channel}`);
  renderSidebar();
  loadChannel().catch(showError);
}

// -- live updates ---------------------------------------------------------------

function onEvent(ev) {
  const m = JSON.parse(ev.data).message;
  if (!m) return;
  if (m.channel !== state.channel) {
    if (ev.type === "message") state.unread.set(m.channel, (state.unread.get(m.channel) || 0) + 1);
    renderSidebar();
    return;
  }
  state.messages.set(m.id, m);
  renderMessages();
}

function connect() {
  if (state.source) state.source.close();
  const src = new EventSource(`/api/console/events?user=${encodeURIComponent(state.user)}`);
  state.source = src;
  src.addEventListener("message", onEvent);
  src.addEventListener("update", onEvent);
  src.addEventListener("hello", () => { $("live").className = "live on"; loadChannel().catch(showError); });
  src.onerror = () => { $("live").className = "live off"; };
}

// -- composer -------------------------------------------------------------------

function startReply(threadId) {
  state.thread = threadId;
  $("replying").hidden = false;
  $("text").focus();
}

function cancelReply() {
  state.thread = null;
  $("replying").hidden = true;
}

async function send(e) {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  $("send").disabled = true;
  try {
    const body = { channel: state.channel, user: state.user, text };
    if (state.thread) body.thread = String(state.thread);
    await api("POST", "/api/console/messages", body);
    $("text").value = "";
    state.stick = true;
    cancelReply();
  } catch (err) {
    showError(err);
  } finally {
    $("send").disabled = false;
  }
}

function mentionCandidates(word) {
  const names = [state.bot, ...state.users];
  return names.filter((n) => `@${n}`.startsWith(word.toLowerCase())).slice(0, 6);
}

function currentWord() {
  const t = $("text");
  const before = t.value.slice(0, t.selectionStart);
  const m = before.match(/@[a-z0-9._-]*$/i);
  return m ? m[0] : null;
}

function updateSuggest() {
  const word = currentWord();
  const list = $("suggest");
  const names = word ? mentionCandidates(word) : [];
  list.hidden = !names.length;
  list.replaceChildren(...names.map((n, i) => {
    const li = el("li", i === 0 ? "active" : "", `@${n}${n === state.bot ? "  (the bot)" : ""}`);
    li.addEventListener("mousedown", (e) => { e.preventDefault(); pickMention(n); });
    return li;
  }));
}

function pickMention(name) {
  const t = $("text");
  const word = currentWord() || "";
  const start = t.selectionStart - word.length;
  t.value = `${t.value.slice(0, start)}@${name} ${t.value.slice(t.selectionStart)}`;
  t.selectionStart = t.selectionEnd = start + name.length + 2;
  $("suggest").hidden = true;
  t.focus();
}

function onKey(e) {
  const list = $("suggest");
  if (!list.hidden && (e.key === "Tab" || e.key === "Enter")) {
    const first = list.querySelector("li");
    if (first) { e.preventDefault(); pickMention(first.textContent.slice(1).split(" ")[0]); return; }
  }
  if (e.key === "Escape") { list.hidden = true; return; }
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); }
}

// -- card buttons -----------------------------------------------------------------

async function onClick(e) {
  const button = e.target.closest("button[data-action]");
  if (!button) return;
  const row = button.closest(".msg");
  button.disabled = true;
  try {
    await api("POST", "/api/console/actions", {
      user: state.user, action: button.dataset.action,
      value: JSON.parse(button.dataset.value || "{}"), message_id: Number(row.dataset.id),
    });
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
}

function showError(err) {
  const box = $("messages");
  const note = el("div", "toast", String(err.message || err));
  box.append(note);
  box.scrollTop = box.scrollHeight;
  setTimeout(() => note.remove(), 6000);
}

// -- start ----------------------------------------------------------------------------

function switchUser(user) {
  state.user = user;
  localStorage.setItem("cowork.user", user);
  if (state.channel.startsWith("dm-")) state.channel = dmChannel(user);
  state.unread.clear();
  openChannel(state.channel);
  connect();
}

async function start() {
  const cfg = await api("GET", "/api/console/config");
  Object.assign(state, { bot: cfg.bot, channels: cfg.channels, users: cfg.users });
  const saved = new URLSearchParams(location.search).get("user") || localStorage.getItem("cowork.user");
  state.user = cfg.users.includes(saved) ? saved : cfg.users[0];
  $("user").replaceChildren(...cfg.users.map((u) => {
    const o = el("option", "", u);
    o.value = u;
    return o;
  }));
  $("user").value = state.user;
  $("user").addEventListener("change", (e) => switchUser(e.target.value));
  const wanted = decodeURIComponent(location.hash.slice(1));
  state.channel = cfg.channels.includes(wanted) ? wanted : cfg.channels[0];
  if (wanted.startsWith("dm-")) state.channel = dmChannel(state.user);
  $("composer").addEventListener("submit", send);
  $("text").addEventListener("keydown", onKey);
  $("text").addEventListener("input", updateSuggest);
  $("cancel-reply").addEventListener("click", cancelReply);
  $("messages").addEventListener("click", onClick);
  openChannel(state.channel);
  connect();
}

start().catch(showError);
