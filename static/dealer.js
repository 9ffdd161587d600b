// Dealer console: mirror a brand's broadcast, share its link or embed snippet, watch the
// room's numbers, read the ledger, download the statement, and set the room branding.
import {
  $, api, consoleToken, copyText, el, money, rememberToken, shortTime, tokenParts,
} from "/static/app.js";

const state = {
  token: null, dealerId: null, brandRooms: [], mirrors: [], statsTimer: null, currency: undefined,
};
const path = (...parts) => "/api/" + parts.map(encodeURIComponent).join("/");
const call = (method, url, body) => api(method, url, { token: state.token, body });
const party = () => `dealer:${state.dealerId}`;

function showError(id, err) { $(id).textContent = err ? (err.message || String(err)) : ""; }

// ---------- sign in ----------

async function signIn(token) {
  const who = tokenParts(token);
  if (!who || who.role !== "dealer") throw new Error("That is not a dealer token.");
  state.token = token;
  state.dealerId = who.id;
  const me = await call("GET", path("dealers", who.id));
  rememberToken("dealer", token);
  $("#who").textContent = me.name;
  $("#login").classList.add("hidden");
  $("#console").classList.remove("hidden");
  $("#signout").classList.remove("hidden");
  fillProfile(me);
  await loadRooms();
  await loadLedger();
  pollStats();
  setInterval(loadLedger, 15000);
}

function showLogin(message) {
  $("#console").classList.add("hidden");
  $("#login").classList.remove("hidden");
  $("#login-error").textContent = message || "";
}

// ---------- rooms ----------

async function loadRooms() {
  const page = await call("GET", "/api/rooms?limit=500");
  state.brandRooms = page.items.filter((r) => r.kind === "brand" && r.status !== "ended");
  state.mirrors = page.items.filter((r) => r.kind === "dealer").reverse();
  renderBrandRooms();
  renderMirrors();
}

function renderBrandRooms() {
  const list = $("#brand-rooms");
  if (!state.brandRooms.length) {
    list.replaceChildren(el("li", { class: "muted",
      text: "No broadcast to mirror yet: a brand must authorize you first." }));
    return;
  }
  list.replaceChildren(...state.brandRooms.map((r) => {
    const title = el("input", { maxLength: 200, placeholder: "Your room title",
      attrs: { "aria-label": `Title of your mirror of ${r.title}` } });
    return el("li", { dataset: { roomId: r.id } },
      el("div", { class: "grow" }, el("strong", { text: r.title }), " ",
        el("span", { class: `badge ${r.status}`, text: r.status }), title),
      el("button", { type: "button", text: "Mirror", onclick: () => mirror(r.id, title.value) }));
  }));
}

async function mirror(brandRoomId, title) {
  showError("#mirror-error", null);
  const body = title.trim() ? { title: title.trim() } : {};
  try {
    await call("POST", path("rooms", brandRoomId, "mirrors"), body);
    await loadRooms();
    pollStats();
  } catch (err) { showError("#mirror-error", err); }
}

function snippets(room) {
  const origin = new URL(room.embed_url).origin;
  const iframe = `<iframe src="${room.embed_url}" title="${room.title.replace(/"/g, "&quot;")}" `
    + `width="420" height="760" style="border:0;max-width:100%" allow="autoplay; fullscreen">`
    + `</iframe>`;
  const script = `<script src="${origin}/static/embed.js" data-room="${room.id}" async></script>`;
  return { iframe, script };
}

function copyRow(label, value, rows = 1) {
  const field = rows > 1
    ? el("textarea", { readOnly: true, class: "snippet", value, rows, attrs: { "aria-label": label } })
    : el("input", { readOnly: true, class: "snippet", value, attrs: { "aria-label": label } });
  const note = el("span", { class: "muted" });
  return el("div", {},
    el("label", { text: label }),
    el("div", { class: "row" }, field,
      el("button", { type: "button", class: "secondary small", text: "Copy", onclick: async () => {
        note.textContent = (await copyText(value, field)) ? "copied" : "press Ctrl+C to copy";
      } }), note));
}

function renderMirrors() {
  const box = $("#mirrors");
  if (!state.mirrors.length) {
    box.replaceChildren(el("p", { class: "muted", text: "You have no room yet: mirror a broadcast." }));
    return;
  }
  box.replaceChildren(...state.mirrors.map((room) => {
    const { iframe, script } = snippets(room);
    return el("article", { class: "panel", dataset: { roomId: room.id } },
      el("div", { class: "row" }, el("strong", { class: "grow", text: room.title }),
        el("span", { class: `badge ${room.status}`, text: room.status }),
        el("a", { href: room.watch_url, target: "_blank", rel: "noopener", text: "open" })),
      copyRow("Watch link", room.watch_url),
      copyRow("Embed (script tag)", script),
      copyRow("Embed (iframe)", iframe, 3),
      el("div", { class: "stat-grid room-stats" }));
  }));
}

const pick = (obj, ...keys) => {
  for (const key of keys) if (obj && obj[key] !== undefined && obj[key] !== null) return obj[key];
  return undefined;
};

function stat(label, value) {
  return el("div", { class: "stat" }, el("b", { text: String(value ?? "–") }),
    el("span", { text: label }));
}

async function pollStats() {
  clearTimeout(state.statsTimer);
  for (const room of state.mirrors) {
    const node = document.querySelector(`[data-room-id="${CSS.escape(room.id)}"] .room-stats`);
    if (!node) continue;
    try {
      const stats = await call("GET", path("rooms", room.id, "stats"));
      if (stats.currency) state.currency = stats.currency;
      const mine = (pick(stats, "rooms", "per_room") || []).find((r) => (r.room_id || r.id) === room.id);
      const s = mine || stats.totals || stats;
      node.replaceChildren(
        stat("viewers now", pick(s, "viewers_now", "viewers") ?? 0),
        stat("viewers peak", pick(s, "viewers_peak", "peak_viewers") ?? 0),
        stat("orders", pick(s, "orders") ?? 0),
        stat("units", pick(s, "units") ?? 0),
        stat("GMV", money(pick(s, "gmv_cents") || 0, state.currency)),
        stat("commission", money(pick(s, "commission_cents", "dealer_commission_cents") || 0, state.currency)));
    } catch (err) {
      node.replaceChildren(el("span", { class: "muted", text: `stats unavailable: ${err.message}` }));
    }
  }
  state.statsTimer = setTimeout(pollStats, 5000);
}

// ---------- ledger and statement ----------

async function loadLedger() {
  showError("#ledger-error", null);
  let entries = [];
  try {
    let cursor = null;
    do {
      const query = new URLSearchParams({ party: party(), limit: "1000" });
      if (cursor) query.set("cursor", cursor);
      const page = await call("GET", `/api/ledger?${query}`);
      entries = entries.concat(page.items);
      cursor = page.next_cursor;
    } while (cursor && entries.length < 5000);
  } catch (err) { showError("#ledger-error", err); return; }
  const sum = (list) => list.reduce((total, e) => total + Number(e.amount_cents), 0);
  const earned = sum(entries.filter((e) => e.kind !== "payout"));
  try {
    // balances are computed by the server (availability depends on its clock)
    const balance = await call("GET", path("balances", party()));
    if (balance.currency) state.currency = balance.currency;
    $("#earnings").replaceChildren(
      stat("commission earned", money(earned, state.currency)),
      stat("balance", money(balance.balance_cents, state.currency)),
      stat("available now", money(balance.available_cents, state.currency)),
      stat("pending", money(balance.pending_cents, state.currency)));
  } catch (err) { showError("#ledger-error", err); }
  $("#ledger").tBodies[0].replaceChildren(...entries.slice().reverse().map((e) => el("tr",
    { dataset: { entryId: e.id } },
    el("td", { text: shortTime(e.created_at) }),
    el("td", { text: e.kind }),
    el("td", { text: e.role }),
    el("td", { class: "snippet", text: e.order_id || "" }),
    el("td", { text: roomTitle(e.room_id) }),
    el("td", { class: "num", text: `${(e.rate_bps / 100).toFixed(2)}%` }),
    el("td", { class: "num", text: money(e.base_cents, state.currency) }),
    el("td", { class: "num amount", text: money(e.amount_cents, state.currency) }))));
}

function roomTitle(id) {
  const room = state.mirrors.find((r) => r.id === id);
  return room ? room.title : id || "";
}

async function downloadStatement() {
  showError("#ledger-error", null);
  const query = new URLSearchParams();
  if ($("#st-from").value) query.set("from", $("#st-from").value);
  if ($("#st-to").value) query.set("to", $("#st-to").value);
  try {
    const response = await api("GET", `/api/statements/${encodeURIComponent(party())}.csv?${query}`,
      { token: state.token, raw: true });
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: `statement-${party().replace(":", "-")}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) { showError("#ledger-error", err); }
}

// ---------- branding ----------

function fillProfile(me) {
  $("#logo-url").value = me.logo_url || "";
  $("#color").value = me.color || "";
  if (me.color && /^#[0-9a-fA-F]{6}$/.test(me.color)) $("#color-pick").value = me.color;
  $("#sites").value = (me.allowed_sites || []).join("\n");
}

async function saveProfile(event) {
  event.preventDefault();
  showError("#profile-error", null);
  $("#profile-saved").textContent = "";
  const body = {
    logo_url: $("#logo-url").value.trim() || null,
    color: $("#color").value.trim() || null,
    allowed_sites: $("#sites").value.split(/\s+/).map((s) => s.trim()).filter(Boolean),
  };
  try {
    fillProfile(await call("PUT", path("dealers", state.dealerId, "profile"), body));
    $("#profile-saved").textContent = "saved";
  } catch (err) { showError("#profile-error", err); }
}

// ---------- start ----------

async function main() {
  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try { await signIn($("#token-input").value.trim()); } catch (err) { showLogin(err.message); }
  });
  $("#signout").addEventListener("click", () => { rememberToken("dealer", null); location.reload(); });
  $("#profile-form").addEventListener("submit", saveProfile);
  $("#color-pick").addEventListener("input", () => { $("#color").value = $("#color-pick").value; });
  $("#statement").addEventListener("click", downloadStatement);
  $("#ledger-refresh").addEventListener("click", loadLedger);
  const token = consoleToken("dealer");
  if (!token) { showLogin(); return; }
  try { await signIn(token); } catch (err) { showLogin(err.message); }
}

main().catch((err) => console.warn("dealer console failed to start", err));
