// Host console: rooms, go live/end, pin cards, flash sales, the live dashboard and the merged,
// room-tagged chat of every mirror with hide and mute on each line.
import {
  $, api, consoleToken, el, money, rememberToken, RoomSocket, shortTime, tokenParts,
} from "/static/app.js";

const state = {
  token: null,
  brandId: null,
  rooms: [],
  room: null, // the selected brand room (with .mirrors)
  products: [],
  pinned: new Set(),
  seckills: new Map(),
  socket: null,
  statsTimer: null,
  lastOrders: null,
  currency: "CNY",
};

const path = (...parts) => "/api/" + parts.map(encodeURIComponent).join("/");
const call = (method, url, body) => api(method, url, { token: state.token, body });

function showError(id, err) { $(id).textContent = err ? (err.message || String(err)) : ""; }

// ---------- sign in ----------

async function signIn(token) {
  const who = tokenParts(token);
  if (!who || who.role !== "brand") throw new Error("That is not a brand token.");
  state.token = token;
  state.brandId = who.id;
  await call("GET", "/api/rooms?kind=brand&limit=1");
  rememberToken("brand", token);
  $("#who").textContent = `brand ${who.id}`;
  $("#login").classList.add("hidden");
  $("#console").classList.remove("hidden");
  $("#signout").classList.remove("hidden");
  await Promise.all([loadRooms(), loadProducts()]);
}

function showLogin(message) {
  $("#console").classList.add("hidden");
  $("#login").classList.remove("hidden");
  $("#login-error").textContent = message || "";
}

// ---------- rooms ----------

async function loadRooms() {
  const page = await call("GET", "/api/rooms?kind=brand&limit=200");
  state.rooms = page.items.filter((r) => r.kind === "brand").reverse();
  renderRooms();
  const keep = state.room && state.rooms.find((r) => r.id === state.room.id);
  const pick = keep || state.rooms.find((r) => r.status === "live") || state.rooms[0];
  if (pick && (!state.room || pick.id !== state.room.id)) await selectRoom(pick.id);
}

function renderRooms() {
  $("#rooms").replaceChildren(...state.rooms.map((r) => el("li",
    { class: state.room && state.room.id === r.id ? "selected" : "", dataset: { roomId: r.id } },
    el("span", { class: "grow", text: r.title }),
    el("span", { class: `badge ${r.status}`, text: r.status }),
    el("button", { type: "button", class: "secondary small", text: "Open",
      onclick: () => selectRoom(r.id) }))));
}

async function selectRoom(roomId) {
  const room = await call("GET", path("rooms", roomId));
  state.room = room;
  state.pinned = new Set();
  state.seckills = new Map();
  state.lastOrders = null;
  $("#feed").replaceChildren();
  renderRooms();
  renderRoom();
  renderProducts();
  renderAllocations();
  renderSeckills();
  connect();
  pollStats();
}

function renderRoom() {
  const room = state.room;
  $("#no-room").classList.toggle("hidden", !!room);
  $("#room-detail").classList.toggle("hidden", !room);
  if (!room) return;
  $("#room-name").textContent = room.title;
  const badge = $("#room-status");
  badge.textContent = room.status;
  badge.className = `badge ${room.status}`;
  $("#room-stream-url").textContent = room.stream_url || "none (viewers see a placeholder)";
  $("#room-watch").href = room.watch_url;
  $("#go-live").disabled = room.status !== "scheduled";
  $("#end-room").disabled = room.status === "ended";
  const mirrors = room.mirrors || [];
  $("#mirrors").replaceChildren(...(mirrors.length ? mirrors.map((m) => el("li", {},
    el("span", { class: "grow", text: m.title }),
    el("span", { class: `badge ${m.status}`, text: m.status }),
    el("a", { href: m.watch_url, target: "_blank", rel: "noopener", text: "watch" })))
    : [el("li", { class: "muted", text: "No dealer has mirrored this room yet." })]));
}

async function setRoomStatus(action) {
  showError("#bc-error", null);
  try {
    await call("POST", path("rooms", state.room.id, action));
    await selectRoomKeepingFeed();
  } catch (err) { showError("#bc-error", err); }
}

async function selectRoomKeepingFeed() {
  const room = await call("GET", path("rooms", state.room.id));
  state.room = room;
  const index = state.rooms.findIndex((r) => r.id === room.id);
  if (index >= 0) state.rooms[index] = room;
  renderRooms();
  renderRoom();
  renderAllocations();
}

async function createRoom(event) {
  event.preventDefault();
  showError("#room-error", null);
  const body = { title: $("#room-title").value.trim() };
  const stream = $("#room-stream").value.trim();
  if (stream) body.stream_url = stream;
  const starts = $("#room-starts").value;
  if (starts) body.starts_at = new Date(starts).toISOString();
  try {
    const room = await call("POST", "/api/rooms", body);
    $("#room-form").reset();
    await loadRooms();
    await selectRoom(room.id);
  } catch (err) { showError("#room-error", err); }
}

// ---------- products and cards ----------

async function loadProducts() {
  const page = await call("GET", "/api/products?limit=500");
  state.products = page.items;
  renderProducts();
  const select = $("#sk-product");
  select.replaceChildren(...state.products.map((p) => el("option",
    { value: p.id, text: `${p.title} (${money(p.price_cents, state.currency)})` })));
}

function renderProducts() {
  const list = $("#products");
  if (!state.products.length) {
    list.replaceChildren(el("li", { class: "muted", text: "No products yet." }));
    return;
  }
  list.replaceChildren(...state.products.map((p) => {
    const pinned = state.pinned.has(p.id);
    return el("li", { dataset: { productId: p.id } },
      el("span", { class: "grow" }, el("strong", { text: p.title }), " ",
        el("span", { class: "muted", text: `${p.sku} · ${money(p.price_cents, state.currency)}` })),
      el("button", { type: "button", class: pinned ? "small" : "secondary small",
        text: pinned ? "Unpin" : "Pin", disabled: !state.room,
        attrs: { "aria-pressed": String(pinned) }, onclick: () => togglePin(p.id) }));
  }));
}

async function togglePin(productId) {
  showError("#pin-error", null);
  const pinned = state.pinned.has(productId);
  try {
    if (pinned) await call("DELETE", path("rooms", state.room.id, "cards", productId));
    else await call("POST", path("rooms", state.room.id, "cards"), { product_id: productId });
    if (pinned) state.pinned.delete(productId); else state.pinned.add(productId);
    renderProducts();
  } catch (err) { showError("#pin-error", err); }
}

async function createProduct(event) {
  event.preventDefault();
  showError("#product-error", null);
  const body = {
    sku: $("#p-sku").value.trim(),
    title: $("#p-title").value.trim(),
    price_cents: Number($("#p-price").value),
    dealer_bps: Number($("#p-dealer").value || 0),
    upline_bps: Number($("#p-upline").value || 0),
  };
  const image = $("#p-image").value.trim();
  if (image) body.image_url = image;
  try {
    await call("POST", "/api/products", body);
    $("#product-form").reset();
    await loadProducts();
  } catch (err) { showError("#product-error", err); }
}

// ---------- flash sales ----------

function renderAllocations() {
  const box = $("#sk-allocations");
  const mirrors = (state.room && state.room.mirrors) || [];
  box.classList.toggle("hidden", !mirrors.length);
  box.replaceChildren(el("legend", { class: "muted", text: "Units reserved per mirror (optional)" }),
    ...mirrors.map((m) => el("div", { class: "row" },
      el("label", { class: "grow", text: m.title, attrs: { for: `alloc-${m.id}` } }),
      el("input", { id: `alloc-${m.id}`, type: "number", min: "1", dataset: { roomId: m.id } }))));
}

async function createSeckill(event) {
  event.preventDefault();
  showError("#seckill-error", null);
  const body = {
    product_id: $("#sk-product").value,
    price_cents: Number($("#sk-price").value),
    stock: Number($("#sk-stock").value),
    per_viewer_limit: Number($("#sk-limit").value),
  };
  const starts = $("#sk-starts").value;
  if (starts) body.starts_at = new Date(starts).toISOString();
  const allocations = {};
  for (const input of $("#sk-allocations").querySelectorAll("input")) {
    if (input.value) allocations[input.dataset.roomId] = Number(input.value);
  }
  if (Object.keys(allocations).length) body.allocations = allocations;
  try {
    const sk = await call("POST", path("rooms", state.room.id, "seckills"), body);
    state.seckills.set(sk.id, { ...state.seckills.get(sk.id), ...sk });
    renderSeckills();
    $("#seckill-form").reset();
  } catch (err) { showError("#seckill-error", err); }
}

function productTitle(id) {
  const product = state.products.find((p) => p.id === id);
  return product ? product.title : id;
}

function renderSeckills() {
  const list = $("#seckill-list");
  const items = [...state.seckills.values()];
  if (!items.length) {
    list.replaceChildren(el("li", { class: "muted", text: "No flash sale in this room." }));
    return;
  }
  list.replaceChildren(...items.map((sk) => el("li", { dataset: { seckillId: sk.id } },
    el("span", { class: "grow" }, el("strong", { text: productTitle(sk.product_id) }), " ",
      el("span", { class: "muted",
        text: `${money(sk.price_cents, state.currency)} · starts ${shortTime(sk.starts_at)}` })),
    el("span", { class: "sk-left", text: `${sk.left ?? sk.stock} / ${sk.stock} left` }),
    el("span", { class: "badge", text: sk.state || "" }),
    el("button", { type: "button", class: "secondary small", text: "End",
      disabled: sk.state === "ended" || sk.state === "sold_out",
      onclick: () => endSeckill(sk.id) }))));
}

async function endSeckill(id) {
  showError("#seckill-error", null);
  try {
    const sk = await call("POST", path("seckills", id, "end"));
    state.seckills.set(id, { ...state.seckills.get(id), ...sk });
    renderSeckills();
  } catch (err) { showError("#seckill-error", err); }
}

// ---------- dashboard ----------

const pick = (obj, ...keys) => {
  for (const key of keys) if (obj && obj[key] !== undefined && obj[key] !== null) return obj[key];
  return undefined;
};

function stat(label, value) {
  return el("div", { class: "stat" }, el("b", { text: String(value ?? "–") }),
    el("span", { text: label }));
}

function roomName(id) {
  if (state.room && id === state.room.id) return `${state.room.title} (brand room)`;
  const mirror = ((state.room && state.room.mirrors) || []).find((m) => m.id === id);
  return mirror ? mirror.title : id;
}

function renderStats(stats, ordersPerS) {
  const totals = stats.totals || stats.total || stats;
  $("#stats").replaceChildren(
    stat("viewers now", pick(totals, "viewers_now", "viewers")),
    stat("viewers peak", pick(totals, "viewers_peak", "peak_viewers")),
    stat("orders / s", ordersPerS === null ? "–" : ordersPerS.toFixed(1)),
    stat("orders", pick(totals, "orders", "paid_orders")),
    stat("units", pick(totals, "units")),
    stat("GMV", money(pick(totals, "gmv_cents") || 0, state.currency)),
    stat("commission", money(pick(totals, "commission_cents") || 0, state.currency)),
    ...[...state.seckills.values()].filter((sk) => sk.state !== "ended").map((sk) =>
      stat(`left · ${productTitle(sk.product_id)}`, sk.left ?? sk.stock)));
  const rooms = pick(stats, "rooms", "per_room", "dealer_rooms", "mirrors") || [];
  const table = $("#stats-table");
  table.classList.toggle("hidden", !rooms.length);
  table.tBodies[0].replaceChildren(...rooms.map((r) => el("tr", { dataset: { roomId: r.room_id || r.id } },
    el("td", { text: r.title || roomName(r.room_id || r.id) }),
    el("td", { class: "num", text: String(pick(r, "viewers_now", "viewers") ?? 0) }),
    el("td", { class: "num", text: String(pick(r, "orders") ?? 0) }),
    el("td", { class: "num", text: String(pick(r, "units") ?? 0) }),
    el("td", { class: "num", text: money(pick(r, "gmv_cents") || 0, state.currency) }),
    el("td", { class: "num", text: money(pick(r, "commission_cents", "dealer_commission_cents") || 0,
      state.currency) }))));
}

async function pollStats() {
  clearTimeout(state.statsTimer);
  if (!state.room) return;
  const roomId = state.room.id;
  try {
    const stats = await call("GET", path("rooms", roomId, "stats"));
    if (!state.room || state.room.id !== roomId) return;
    if (stats.currency) state.currency = stats.currency;
    const totals = stats.totals || stats.total || stats;
    const orders = Number(pick(totals, "orders") || 0);
    const now = Date.now();
    let rate = null;
    if (state.lastOrders) rate = Math.max(0, (orders - state.lastOrders.n) * 1000 / (now - state.lastOrders.at));
    state.lastOrders = { n: orders, at: now };
    renderStats(stats, rate);
    $("#stats-note").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    $("#stats-note").textContent = `stats unavailable: ${err.message}`;
  }
  state.statsTimer = setTimeout(pollStats, 3000);
}

// ---------- merged chat with moderation ----------

function feedLine(line) {
  const roomId = line.room_id || state.room.id;
  return el("div", { class: "line", dataset: { chatId: line.id, roomId, viewerId: line.viewer_id } },
    el("span", { class: "tag", text: roomName(roomId) }),
    el("strong", { text: line.name || "Guest" }),
    el("span", { class: "text", text: line.text }),
    el("button", { type: "button", class: "secondary small hide", text: "Hide",
      attrs: { "aria-label": `Hide this message from ${line.name || "guest"}` },
      onclick: () => hideLine(roomId, line.id) }),
    el("button", { type: "button", class: "secondary small mute", text: "Mute",
      attrs: { "aria-label": `Mute ${line.name || "this viewer"} in this room` },
      onclick: (e) => muteViewer(roomId, line.viewer_id, e.currentTarget) }));
}

function addFeed(line) {
  const feed = $("#feed");
  const atBottom = feed.scrollHeight - feed.scrollTop - feed.clientHeight < 40;
  feed.append(feedLine(line));
  while (feed.children.length > 300) feed.firstElementChild.remove();
  if (atBottom) feed.scrollTop = feed.scrollHeight;
}

function removeFeed(chatId) {
  for (const node of $("#feed").querySelectorAll(".line")) {
    if (node.dataset.chatId === String(chatId)) node.remove();
  }
}

async function hideLine(roomId, chatId) {
  showError("#mod-error", null);
  try {
    await call("POST", path("rooms", roomId, "chat", chatId, "hide"));
    removeFeed(chatId);
  } catch (err) { showError("#mod-error", err); }
}

async function muteViewer(roomId, viewerId, button) {
  showError("#mod-error", null);
  try {
    await call("POST", path("rooms", roomId, "mutes"), { viewer_id: viewerId });
    for (const node of $("#feed").querySelectorAll(".line")) {
      if (node.dataset.viewerId === viewerId && node.dataset.roomId === roomId) {
        const mute = node.querySelector("button.mute");
        mute.textContent = "Muted";
        mute.disabled = true;
      }
    }
    if (button) button.disabled = true;
  } catch (err) { showError("#mod-error", err); }
}

// ---------- the brand room's socket ----------

function onEvent(event) {
  switch (event.type) {
    case "snapshot":
      state.pinned = new Set((event.cards || []).map((p) => p.id));
      state.seckills = new Map((event.seckills || []).map((sk) => [sk.id, sk]));
      $("#feed").replaceChildren();
      for (const line of event.chat || []) addFeed(line);
      renderProducts();
      renderSeckills();
      break;
    case "card": state.pinned.add(event.product.id); renderProducts(); break;
    case "uncard": state.pinned.delete(event.product_id); renderProducts(); break;
    case "seckill": {
      const { type, seq, ts, ...sk } = event;
      state.seckills.set(sk.id, { ...state.seckills.get(sk.id), ...sk });
      renderSeckills();
      break;
    }
    case "stock": {
      const sk = state.seckills.get(event.seckill_id);
      if (sk) { sk.left = event.left; renderSeckills(); }
      break;
    }
    case "chat": addFeed(event); break;
    case "chat_hidden": removeFeed(event.chat_id); break;
    case "status":
      if (state.room) { state.room.status = event.status; renderRoom(); }
      break;
    default: break;
  }
}

function connect() {
  if (state.socket) state.socket.close();
  state.socket = new RoomSocket(state.room.id, {
    token: state.token,
    onEvent,
    onState: (s) => {
      document.body.dataset.connection = s;
      $("#feed-conn").textContent = s === "live" ? "" : `chat feed: ${s}`;
    },
    onFatal: (_code, why) => { $("#feed-conn").textContent = `chat feed closed: ${why}`; },
  });
  state.socket.connect();
}

// ---------- start ----------

async function main() {
  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try { await signIn($("#token-input").value.trim()); } catch (err) { showLogin(err.message); }
  });
  $("#signout").addEventListener("click", () => { rememberToken("brand", null); location.reload(); });
  $("#room-form").addEventListener("submit", createRoom);
  $("#product-form").addEventListener("submit", createProduct);
  $("#seckill-form").addEventListener("submit", createSeckill);
  $("#go-live").addEventListener("click", () => setRoomStatus("live"));
  $("#end-room").addEventListener("click", () => setRoomStatus("end"));
  const token = consoleToken("brand");
  if (!token) { showLogin(); return; }
  try { await signIn(token); } catch (err) { showLogin(err.message); }
}

main().catch((err) => console.warn("host console failed to start", err));
