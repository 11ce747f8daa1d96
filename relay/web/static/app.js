// notify-relay's page: the message list with Gmail-syntax search, live updates, and one
// message at a time with each recipient's simulated Gmail view. Plain DOM, no build step;
// mail content only ever goes into textContent or the sandboxed HTML frame.
"use strict";

const $ = (selector) => document.querySelector(selector);
const PAGE = 50;
const FEW = 5;                 // addresses shown before "+N more"
const RAW_LIMIT = 256 * 1024;  // octets of a raw message put into the page
const TABS = ["text", "html", "headers", "raw", "attachments", "trace", "timeline"];
const state = { query: "", as: "", items: [], total: 0, exact: true, selected: -1,
                detail: null, tab: "text", viewer: null, fresh: new Set(), allRecipients: false,
                queueTimer: null, queueShown: "" };

// -- small helpers ------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

const chip = (text, kind = "") => el("span", { class: `chip ${kind}`, text });

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = (response.headers.get("Content-Type") || "").includes("json")
    ? await response.json() : await response.text();
  if (!response.ok) throw Object.assign(new Error(body.reason || response.statusText),
                                        { status: response.status, body });
  return body;
}

function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const today = date.toDateString() === new Date().toDateString();
  return today ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
               : date.toLocaleDateString([], { day: "numeric", month: "short", year: "numeric" });
}

const stamp = (seconds) => new Date(seconds * 1000).toLocaleString();
const kilobytes = (octets) => `${Math.round(octets / 1024).toLocaleString()} KB`;

// The first FEW of ``items`` (text) and a "+N more" button that shows the rest.
function collapsed(items, separator = ", ") {
  const box = el("span", { text: items.slice(0, FEW).join(separator) });
  if (items.length <= FEW) return box;
  const more = el("button", { type: "button", class: "more", text: `+${items.length - FEW} more`,
                              onclick: () => box.replaceChildren(items.join(separator)) });
  box.append(separator.trimEnd() + " ", more);
  return box;
}
const person = (box) => (box ? (box.name ? `${box.name} <${box.address}>` : box.address) : "");
const sameAddress = (a, b) => a.toLowerCase() === b.toLowerCase();

function saveLocation() {
  const params = new URLSearchParams();
  if (state.query) params.set("q", state.query);
  if (state.as) params.set("as", state.as);
  if (state.detail) params.set("id", state.detail.id);
  history.replaceState(null, "", params.toString() ? `#${params}` : location.pathname);
}

// -- the list ------------------------------------------------------------------------------

async function loadList({ append = false } = {}) {
  const params = new URLSearchParams({ q: state.query, limit: PAGE,
                                       offset: append ? state.items.length : 0 });
  if (state.as) params.set("as", state.as);
  let page;
  try {
    page = await api(`/api/v1/messages?${params}`);
  } catch (error) {
    if (error.status === 400) return showQueryError(error.body);
    $("#summary").textContent = error.body.reason || error.message;  // e.g. capture is off
    return;
  }
  showQueryError(null);
  state.items = append ? state.items.concat(page.messages) : page.messages;
  state.total = page.total;
  state.exact = page.total_exact;
  renderList();
}

function showQueryError(body) {
  const box = $("#query-error");
  box.replaceChildren();
  box.hidden = !body;
  $("#q").setAttribute("aria-invalid", body ? "true" : "false");
  if (!body) return;
  if (body.column) {
    const caret = " ".repeat(body.column - 1) + "^";
    box.append(el("pre", { text: `${body.query}\n${caret}` }),
               `Expected ${body.expected} (column ${body.column}).`);
  } else {
    box.append(body.reason || "The search failed.");
  }
}

function renderList() {
  const list = $("#messages");
  const openId = state.detail && state.detail.id;
  list.replaceChildren(...state.items.map((item, index) => row(item, index)));
  state.selected = Math.min(state.selected, state.items.length - 1);
  const openIndex = state.items.findIndex((item) => item.id === openId);
  if (openIndex >= 0) state.selected = openIndex;
  markSelected();
  const shown = state.items.length;
  const total = state.exact ? `${state.total}` : `up to ${state.total}`;
  const who = state.as ? ` for ${state.as}` : "";
  $("#summary").textContent = shown
    ? `${total} message${state.total === 1 ? "" : "s"}${who}, newest first`
    : `No messages${who}${state.query ? " match" : " yet: send some to the SMTP port"}.`;
  $("#more").hidden = shown >= state.total;
  state.fresh.clear();
}

function row(item, index) {
  const view = item.view;
  const tags = [chip(item.status, `status-${item.status}`)];
  if (item.attachments) tags.push(chip(`📎 ${item.attachments}`));
  if (item.relay_refusal_count) tags.push(chip("relay mode would refuse", "refused"));
  if (view) {
    if (view.trashed) tags.push(chip("Trash", "place-trash"));
    else if (view.archived) tags.push(chip("Archived", "place-archived"));
    if (view.starred) tags.push(chip("★", "star"));
    for (const label of view.labels) tags.push(chip(label, "label"));
  }
  const classes = [view && !view.read ? "unread" : "", state.fresh.has(item.id) ? "fresh" : ""];
  return el("li", { role: "option", id: `m-${item.id}`, "data-index": index,
                    class: classes.join(" ").trim() || null,
                    onclick: () => { select(index); openSelected(); } },
    el("span", { class: "from", text: person(item.from) || "(no sender)" }),
    el("span", { class: "date", text: when(item.received), title: item.received }),
    el("span", { class: "subject", text: item.subject || "(no subject)" }),
    el("span", { class: "snippet", text: item.snippet }),
    el("span", { class: "tags" }, tags));
}

function select(index) {
  if (index < 0 || index >= state.items.length) return;
  state.selected = index;
  markSelected();
}

function markSelected() {
  const list = $("#messages");
  for (const node of list.children) {
    node.setAttribute("aria-selected", String(Number(node.dataset.index) === state.selected));
  }
  const current = list.children[state.selected];
  if (current) {
    list.setAttribute("aria-activedescendant", current.id);
    current.scrollIntoView({ block: "nearest" });
  }
}

// -- one message ---------------------------------------------------------------------------

async function openSelected() {
  const item = state.items[state.selected];
  if (item) await openMessage(item.id);
}

async function openMessage(id) {
  let detail;
  try {
    detail = await api(`/api/v1/messages/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error.status === 404) return closeMessage();
    throw error;
  }
  state.detail = detail;
  state.allRecipients = false;
  const index = state.items.findIndex((item) => item.id === detail.id);
  if (index >= 0) select(index);
  const recipients = recipientsOf(detail);
  const wanted = state.as || state.viewer;
  state.viewer = recipients.find((r) => wanted && sameAddress(r, wanted)) || recipients[0] || null;
  $("#empty").hidden = true;
  hideQueue();
  $("#message").hidden = false;
  $("#action-result").textContent = "";
  $("#subject").textContent = detail.subject || "(no subject)";
  renderFields(detail);
  renderRefusals(detail);
  renderRecipients(detail);
  showTab(state.tab);
  saveLocation();
}

function closeMessage() {
  state.detail = null;
  hideQueue();
  $("#message").hidden = true;
  $("#empty").hidden = false;
  saveLocation();
}

function recipientsOf(detail) {
  const seen = new Map();
  for (const address of [...(detail.envelope.recipients || []), ...Object.keys(detail.filters)]) {
    if (!seen.has(address.toLowerCase())) seen.set(address.toLowerCase(), address);
  }
  return [...seen.values()];
}

function renderFields(detail) {
  const list = (boxes) => (boxes.length ? collapsed(boxes.map(person)) : "");
  const rcpts = detail.envelope.recipients || [];
  const fields = [
    ["From", person(detail.from)],
    ["To", list(detail.to)],
    ["Cc", list(detail.cc)],
    ["Date", detail.date ? new Date(detail.date).toLocaleString() : ""],
    ["Received", new Date(detail.received).toLocaleString()],
    ["Envelope", el("span", {}, `<${detail.envelope.sender ?? ""}> → `,
                    collapsed(rcpts.map((r) => `<${r}>`))), "envelope"],
    ["Size", `${detail.size} bytes`],
    ["Status", detail.status],
  ];
  $("#fields").replaceChildren(...fields.filter(([, value]) => value)
    .flatMap(([name, value, kind]) => [el("dt", { text: name }), el("dd", { class: kind }, value)]));
}

// What relay mode would have answered: capture mode kept the message anyway.
function renderRefusals(detail) {
  const box = $("#refusals");
  const notes = detail.relay_refusals || [];
  box.hidden = !notes.length;
  box.replaceChildren(el("strong", { text: "Relay mode would refuse this message" }),
    " (capture mode kept it):",
    el("ul", {}, notes.map((note) => el("li", { text: `${note.stage}: ${note.reply}` }))));
}

function renderRecipients(detail) {
  const recipients = recipientsOf(detail);
  let shown = recipients;
  if (!state.allRecipients && recipients.length > FEW) {
    shown = recipients.slice(0, FEW);
    if (state.viewer && !shown.some((r) => sameAddress(r, state.viewer))) shown.push(state.viewer);
  }
  const more = shown.length < recipients.length
    ? el("button", { type: "button", class: "more", text: `+${recipients.length - shown.length} more`,
                     onclick: () => { state.allRecipients = true; renderRecipients(detail); } })
    : null;
  $("#recipient-tabs").replaceChildren(...shown.map((address) =>
    el("button", { type: "button", text: address,
                   "aria-pressed": String(state.viewer !== null && sameAddress(address, state.viewer)),
                   onclick: () => { state.viewer = address; renderRecipients(detail); } })), more || "");
  const box = $("#recipient-view");
  box.replaceChildren();
  if (!state.viewer) return box.append(el("span", { class: "muted", text: "No recipients." }));
  const key = Object.keys(detail.filters).find((k) => sameAddress(k, state.viewer));
  const result = key ? detail.filters[key] : null;
  if (!result) {
    return box.append(el("div", { class: "line" }, chip("Inbox"), chip("Unread")),
      el("span", { class: "muted", text: "No filters configured for this recipient: it arrives as is." }));
  }
  const place = result.trashed ? chip("Trash", "place-trash")
    : result.archived ? chip("Archived (skips the inbox)", "place-archived") : chip("Inbox");
  const flags = [place, chip(result.read ? "Read" : "Unread")];
  if (result.starred) flags.push(chip("★ Starred", "star"));
  if (result.important) flags.push(chip("Important"));
  if (result.category) flags.push(chip(`Category: ${result.category}`));
  const labels = result.labels.length ? result.labels.map((label) => chip(label, "label"))
    : [el("span", { class: "muted", text: "No labels" })];
  const matched = result.matched.map((m) => m.name || `filter #${m.index}`).join(", ");
  box.append(el("div", { class: "line", "data-recipient": state.viewer }, flags),
    el("div", { class: "line labels" }, labels),
    el("span", { class: "muted", text: matched
      ? `Filters that fired (${result.rules || "rules"}): ${matched}` : "No filter matched." }));
  for (const note of [...(result.forwarded_to || []).map((to) => `forwarded to ${to}`),
                      ...(result.warnings || [])]) {
    box.append(el("span", { class: "muted", text: note }));
  }
}

async function showTab(name) {
  state.tab = name;
  for (const tab of document.querySelectorAll("#tabs [role=tab]")) {
    const on = tab.dataset.tab === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
  }
  const detail = state.detail;
  const panel = $("#panel");
  const id = encodeURIComponent(detail.id);
  const note = (text) => el("p", { class: "note", text });
  const table = (head, rows) => el("table", {}, el("tr", {}, head.map((h) => el("th", { text: h }))),
    rows.map((cells) => el("tr", {}, cells.map((cell) => el("td", {}, cell)))));
  let content;
  if (name === "text") {
    content = detail.text !== null ? el("pre", { text: detail.text }) : note("No text part.");
  } else if (name === "html") {
    content = detail.html === null ? note("No HTML part.") : [
      note("Shown sandboxed: scripts, forms and remote content are blocked."),
      el("iframe", { sandbox: "", src: `/api/v1/messages/${id}/html`, title: "HTML body",
                     referrerpolicy: "no-referrer" })];
  } else if (name === "headers") {
    content = table(["Header", "Value"], detail.headers);
  } else if (name === "raw") {
    content = await rawView(detail, `/api/v1/messages/${id}/raw`);
  } else if (name === "attachments") {
    content = detail.attachments.length ? table(["File", "Type", "Size"], detail.attachments.map((a) => [
      el("a", { href: `/api/v1/messages/${id}/parts/${a.part}`, download: a.filename || `part-${a.part}`,
                text: a.filename || `part ${a.part}` }), a.content_type, `${a.size} bytes`]))
      : note("No attachments.");
  } else if (name === "trace") {
    content = detail.trace.length ? table(["Option", "Change"], detail.trace.map((t) => [t.option, t.change]))
      : note("Cleanup changed nothing.");
  } else {
    content = table(["Time", "Event", "Details"], detail.timeline.map((e) => [stamp(e.at), e.event,
      [e.relay, (e.recipients || []).join(", "), e.detail].filter(Boolean).join(" · ")]));
  }
  if (state.detail === detail && state.tab === name) panel.replaceChildren(...[content].flat());
}

async function releaseOpen() {
  const detail = state.detail;
  const to = prompt("Release to (comma-separated addresses):", (detail.envelope.recipients || []).join(", "));
  if (to === null) return;
  const result = $("#action-result");
  try {
    const body = await api(`/api/v1/messages/${encodeURIComponent(detail.id)}/release`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ to: to.split(/[\s,]+/).filter(Boolean) }) });
    result.className = "";
    result.textContent = `Released: ${body.attempts.map((a) => a.detail || a.reply).join("; ")}`;
  } catch (error) {
    result.className = "error";
    result.textContent = `Not released: ${error.body.reason || (error.body.attempts || []).map((a) => a.reply).join("; ")}`;
  }
}

async function deleteOpen() {
  const detail = state.detail;
  if (!detail || !confirm(`Delete "${detail.subject || detail.id}"?`)) return;
  await api(`/api/v1/messages/${encodeURIComponent(detail.id)}`, { method: "DELETE" });
  closeMessage();
  await loadList();
  $("#messages").focus();
}

async function deleteMatching() {
  const what = state.query ? `every message matching ${state.query}` : "EVERY message";
  if (!confirm(`Delete ${what}${state.as ? ` (of ${state.as})` : ""}?`)) return;
  const params = new URLSearchParams({ q: state.query });
  if (state.as) params.set("as", state.as);
  await api(`/api/v1/messages?${params}`, { method: "DELETE" });
  closeMessage();
  await loadList();
}

// The start of the raw message (at most RAW_LIMIT octets are read), and a download link.
async function rawView(detail, url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(response.statusText);
  const reader = response.body.getReader();
  const chunks = [];
  let size = 0;
  while (size < RAW_LIMIT) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
  }
  const whole = size < RAW_LIMIT || (await reader.read()).done;
  reader.cancel();
  const bytes = new Uint8Array(Math.min(size, RAW_LIMIT));
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk.subarray(0, bytes.length - offset), offset);
    offset += Math.min(chunk.length, bytes.length - offset);
  }
  const notes = [];
  if (!whole) notes.push(`Showing the first ${kilobytes(RAW_LIMIT)} of ${kilobytes(detail.size)}. `);
  if (detail.original_kept) {
    notes.push("This is the message as the client sent it (bare LF line ends); the stored copy has CRLF. ");
  }
  const link = el("a", { href: url, download: `${detail.id}.eml`, text: "Download the whole message" });
  return [el("p", { class: "note" }, notes, link),
          el("pre", { text: new TextDecoder().decode(bytes) })];
}

const QUEUE_ACTIONS = {  // what each state allows, as notify-relay queue has it
  incoming: [["retry", "Retry now"], ["hold", "Hold"]],
  deferred: [["retry", "Retry now"], ["hold", "Hold"]],
  hold: [["release", "Release"]],
  failed: [["requeue", "Requeue"]],
};

async function showQueue() {
  $("#message").hidden = true;
  $("#empty").hidden = true;
  $("#queue").hidden = false;
  $("#queue-result").textContent = "";
  state.queueShown = "";
  clearInterval(state.queueTimer);
  state.queueTimer = setInterval(refreshQueue, 1000);  // deliveries change it: keep it current
  await refreshQueue();
}

function hideQueue() {
  clearInterval(state.queueTimer);
  state.queueTimer = null;
  $("#queue").hidden = true;
}

async function refreshQueue() {
  const queue = await api("/api/v1/queue");
  const shown = JSON.stringify(queue);
  if (shown === state.queueShown) return;  // unchanged: leave the buttons where they are
  state.queueShown = shown;
  const body = $("#queue-body");
  if (!queue.enabled) return body.replaceChildren(el("p", { class: "note", text: "Capture mode: there is no delivery queue." }));
  if (!queue.messages.length) return body.replaceChildren(el("p", { class: "note", text: "The queue is empty." }));
  const cells = (m) => [["id", m.id], ["state", m.state], ["rcpts", collapsed(m.recipients)],
    ["attempts", String(m.attempts)], ["next", m.next_attempt ? stamp(m.next_attempt) : "-"],
    ["reply", m.last_reply]];
  const buttons = (m) => [...(QUEUE_ACTIONS[m.state] || []), ["delete", "Delete"]].map(([action, text]) =>
    el("button", { type: "button", text, class: action === "delete" ? "danger" : null,
                   onclick: () => queueAction(m.id, action) }));
  body.replaceChildren(el("table", {},
    el("tr", {}, ["Id", "State", "Recipients", "Attempts", "Next", "Last reply", "Actions"]
      .map((h) => el("th", { text: h }))),
    queue.messages.map((m) => el("tr", { "data-id": m.id },
      cells(m).map(([kind, cell]) => el("td", { class: kind }, cell)),
      el("td", { class: "actions" }, buttons(m))))));
}

async function queueAction(id, action) {
  if (action === "delete" && !confirm(`Delete queued message ${id}? It will not be delivered.`)) return;
  const result = $("#queue-result");
  try {
    const report = await api(`/api/v1/queue/${encodeURIComponent(id)}/${action}`, { method: "POST" });
    result.className = "";
    result.textContent = report.done.join("; ");
  } catch (error) {
    result.className = "error";
    result.textContent = error.body && error.body.reason ? error.body.reason : error.message;
  }
  await refreshQueue();
}

// -- recipients, live updates, keys --------------------------------------------------------

// "View as" is a field that searches the recipients as one types (a datalist of them all).
async function loadRecipients() {
  const { recipients } = await api("/api/v1/recipients").catch(() => ({ recipients: [] }));
  $("#as-options").replaceChildren(...recipients.map((r) =>
    el("option", { value: r.address, label: `${r.messages} message${r.messages === 1 ? "" : "s"}` })));
  if (document.activeElement !== $("#as")) $("#as").value = state.as;
}

async function viewAs() {
  const wanted = $("#as").value.trim();
  if (wanted === state.as) return;
  state.as = wanted;
  await loadList();
  saveLocation();
  if (state.detail) await openMessage(state.detail.id);
}

// Apply the location's q, as and id: on start, and whenever the hash changes (a deep link
// pasted or followed, back and forward).
async function followHash({ reload = false } = {}) {
  const params = new URLSearchParams(location.hash.slice(1));
  const query = params.get("q") || "";
  const as = params.get("as") || "";
  if (reload || query !== state.query || as !== state.as) {
    state.query = query;
    state.as = as;
    $("#q").value = query;
    $("#as").value = as;
    await loadList();
  }
  const id = params.get("id");
  if (id && (!state.detail || state.detail.id !== id)) await openMessage(id);
  else if (!id && state.detail) closeMessage();
}

function listen() {
  const live = $("#live");
  const events = new EventSource("/api/v1/events");
  let timer = null;
  events.onopen = () => live.classList.add("on");
  events.onerror = () => live.classList.remove("on");
  events.addEventListener("mail", (message) => {
    const event = JSON.parse(message.data);
    if (event.kind === "new") event.ids.forEach((id) => state.fresh.add(id));
    if (event.kind === "deleted" && state.detail && event.ids.includes(state.detail.id)) closeMessage();
    if (event.kind === "changed" && state.detail && event.ids.includes(state.detail.id)) openMessage(state.detail.id);
    clearTimeout(timer);
    timer = setTimeout(() => { loadList(); loadRecipients(); }, 250);
  });
}

// Fault injection (capture mode): a banner while any rule is in force, checked every 2 s.
const describeFault = (rule) => [
  rule.stage,
  rule.recipients.length ? ` for ${rule.recipients.join(", ")}` : "",
  rule.delay ? `: wait ${rule.delay} s` : "",
  rule.drop ? ": drop the connection" : rule.reply ? `: "${rule.reply}"` : "",
  rule.rate < 1 ? ` (${Math.round(rule.rate * 100)} %)` : "",
].join("");

function watchFaults() {
  const banner = $("#faults");
  const check = async () => {
    const faults = await api("/api/v1/faults").catch((error) => error);
    if (faults instanceof Error) {
      if (faults.status === 404) clearInterval(timer);  // relay mode: never any faults
      return;
    }
    banner.hidden = !faults.active;
    banner.textContent = faults.active
      ? `Fault injection is on: ${faults.rules.map(describeFault).join("; ")}` : "";
  };
  const timer = setInterval(check, 2000);
  check();
}

function onKey(event) {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName);
  if (event.key === "Escape") {
    event.target.blur();
    $("#messages").focus();
    return;
  }
  if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
  const tabIndex = TABS.indexOf(state.tab);
  const keys = {
    "/": () => $("#q").focus(),
    j: () => select(state.selected + 1), ArrowDown: () => select(state.selected + 1),
    k: () => select(Math.max(0, state.selected - 1)), ArrowUp: () => select(Math.max(0, state.selected - 1)),
    Enter: openSelected, o: openSelected,
    v: () => $("#as").focus(),
    "#": deleteOpen, Delete: deleteOpen,
    ArrowRight: () => state.detail && event.target.closest("#tabs") && focusTab(tabIndex + 1),
    ArrowLeft: () => state.detail && event.target.closest("#tabs") && focusTab(tabIndex - 1),
  };
  if (/^[1-7]$/.test(event.key) && state.detail) return focusTab(Number(event.key) - 1);
  const action = keys[event.key];
  if (!action || (event.key === "Enter" && event.target.closest("button, a, #tabs"))) return;
  event.preventDefault();
  action();
}

function focusTab(index) {
  const name = TABS[(index + TABS.length) % TABS.length];
  showTab(name);
  document.querySelector(`#tabs [data-tab="${name}"]`).focus();
}

function start() {
  $("#search").addEventListener("submit", (event) => {
    event.preventDefault();
    if (event.submitter === null && document.activeElement === $("#as")) {
      $("#messages").focus();  // Enter in "view as": apply it, back to the list (as search does)
      return viewAs();
    }
    state.query = $("#q").value.trim();
    state.as = $("#as").value.trim();
    state.selected = -1;
    $("#messages").focus();
    loadList().then(saveLocation);
  });
  $("#as").addEventListener("change", viewAs);
  window.addEventListener("hashchange", () => followHash());
  $("#more").addEventListener("click", () => loadList({ append: true }));
  $("#release").addEventListener("click", releaseOpen);
  $("#delete").addEventListener("click", deleteOpen);
  $("#delete-matching").addEventListener("click", deleteMatching);
  $("#show-queue").addEventListener("click", showQueue);
  for (const tab of document.querySelectorAll("#tabs [role=tab]")) {
    tab.addEventListener("click", () => showTab(tab.dataset.tab));
  }
  document.addEventListener("keydown", onKey);
  loadRecipients().then(() => followHash({ reload: true })).then(() => {
    if (!state.detail) $("#messages").focus();
  });
  listen();
  watchFaults();
}

start();
