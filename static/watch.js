// The viewer's page (/watch/{room_id}) and its compact iframe twin (/embed/{room_id}).
// Every user-supplied string goes through textContent: chat can never become markup.
import { $, api, el, money, newRequestId, RoomSocket, safeStorage } from "/static/app.js";

const roomId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const embedded = document.body.classList.contains("embed");
// attribution rides the room id; the viewer token stays on this origin (memory in an iframe
// whose storage is blocked), never in a cookie
const store = safeStorage(embedded ? "session" : "local");
const VIEWER_KEY = "lc.viewer";
const MAX_CHAT = 200;

const state = {
  room: null,
  currency: "CNY",
  viewer: null,
  socket: null,
  cards: new Map(),
  seckills: new Map(),
  mine: new Map(), // seckill id → {phase, order, bought, limit, message}
  likes: 0,
  pendingLikes: 0,
  hls: null,
  streamRetry: null,
};

// ---------- video ----------

function placeholder(title, text = "", showPlay = false) {
  $("#placeholder").classList.remove("hidden");
  $("#placeholder-title").textContent = title;
  $("#placeholder-text").textContent = text;
  $("#play").classList.toggle("hidden", !showPlay);
}

function hidePlaceholder() { $("#placeholder").classList.add("hidden"); }

function stopStream() {
  clearTimeout(state.streamRetry);
  if (state.hls) { state.hls.destroy(); state.hls = null; }
  const video = $("#video");
  video.removeAttribute("src");
}

function tryPlay() {
  const video = $("#video");
  const attempt = video.play();
  if (attempt && attempt.catch) {
    attempt.catch((err) => {
      if (err && err.name === "NotAllowedError") {
        placeholder("Tap to play", "Your browser paused autoplay.", true);
      } else if (err && err.name === "NotSupportedError") {
        streamFailed();
      } // AbortError: a newer load replaced this one
    });
  }
}

function streamFailed() {
  stopStream();
  placeholder("Stream unavailable", "The video cannot be reached right now. Retrying…");
  state.streamRetry = setTimeout(startStream, 10000);
}

function startStream() {
  stopStream();
  const url = state.room && state.room.stream_url;
  const status = state.room && state.room.status;
  if (status === "ended") { placeholder("This broadcast has ended", "Thanks for watching."); return; }
  if (!url) {
    placeholder(status === "live" ? "Live — no video" : "Starting soon",
      "The broadcast has no video stream yet. Cards, flash sales and chat work as usual.");
    return;
  }
  placeholder("Loading video…");
  const video = $("#video");
  video.muted = true;
  video.loop = true; // a recorded (VOD) stream replays; a live one never ends
  if (window.Hls && window.Hls.isSupported()) {
    const hls = new window.Hls({ lowLatencyMode: true, backBufferLength: 30 });
    state.hls = hls;
    hls.on(window.Hls.Events.ERROR, (_event, data) => { if (data && data.fatal) streamFailed(); });
    hls.on(window.Hls.Events.MANIFEST_PARSED, tryPlay);
    hls.loadSource(url);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url; // Safari on iOS: native HLS
    tryPlay();
  } else {
    placeholder("Video not supported", "This browser cannot play the stream.");
  }
}

function wireVideo() {
  const video = $("#video");
  video.addEventListener("playing", hidePlaceholder);
  video.addEventListener("error", () => { if (state.room && state.room.stream_url) streamFailed(); });
  $("#play").addEventListener("click", () => { hidePlaceholder(); tryPlay(); });
}

// ---------- header, branding ----------

function applyBranding(dealer) {
  if (!dealer) return;
  if (dealer.color && /^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$/.test(dealer.color)) {
    document.documentElement.style.setProperty("--brand", dealer.color);
  }
  if (dealer.logo_url && /^https?:\/\//.test(dealer.logo_url)) {
    const logo = $("#logo");
    logo.addEventListener("error", () => logo.classList.add("hidden"), { once: true });
    logo.src = dealer.logo_url;
    logo.alt = dealer.name || "";
    logo.classList.remove("hidden");
  }
}

function renderHead() {
  const room = state.room;
  $("#title").textContent = room.title;
  document.title = room.title;
  const badge = $("#status");
  badge.textContent = room.status;
  badge.className = `badge ${room.status}`;
}

function setStatus(status) {
  state.room.status = status;
  renderHead();
  startStreamIfChanged();
}

// ---------- cards ----------

function renderCards() {
  const box = $("#cards");
  box.replaceChildren(...[...state.cards.values()].map((p) => el("article",
    { class: "product-card", dataset: { productId: p.id } },
    p.image_url && /^https?:\/\//.test(p.image_url) ? el("img", { src: p.image_url, alt: "" }) : null,
    el("div", {},
      el("div", { class: "p-title", text: p.title }),
      el("div", { class: "p-price", text: money(p.price_cents, state.currency) })))));
}

// ---------- seckills ----------

function effectiveState(sk, now) {
  let s = sk.state;
  if (s === "scheduled" && sk.starts_at && Date.parse(sk.starts_at) <= now) s = "open";
  if (s === "open" && sk.ends_at && Date.parse(sk.ends_at) <= now) s = "ended";
  if (s === "open" && typeof sk.left === "number" && sk.left <= 0) s = "sold_out";
  return s;
}

function clock(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const mm = String(m).padStart(2, "0");
  const ss = String(s).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function mineOf(id) {
  if (!state.mine.has(id)) state.mine.set(id, { phase: "idle", order: null, bought: 0 });
  return state.mine.get(id);
}

function buttonFor(sk, s, mine) {
  const price = money(sk.price_cents, state.currency);
  if (mine.phase === "buying") return { text: "Buying…", disabled: true, kind: "buying" };
  if (mine.phase === "paying") return { text: "Paying…", disabled: true, kind: "paying" };
  if (mine.phase === "reserved") {
    return { text: `Reserved — pay ${money(mine.order.amount_cents, state.currency)}`,
      disabled: false, kind: "pay" };
  }
  const underLimit = mine.bought < sk.per_viewer_limit && !mine.limit;
  if (mine.phase === "paid" && !(s === "open" && underLimit)) {
    return { text: "Paid ✓", disabled: true, kind: "paid" };
  }
  if (!underLimit && s !== "scheduled") {
    return { text: "Limit reached", disabled: true, kind: "limit" };
  }
  if (s === "scheduled") {
    return { text: `Starts in ${clock(Date.parse(sk.starts_at) - state.socket.serverNow())}`,
      disabled: true, kind: "not_started" };
  }
  if (s === "sold_out") return { text: "Sold out", disabled: true, kind: "sold_out" };
  if (s === "ended") return { text: "Ended", disabled: true, kind: "ended" };
  const again = mine.phase === "paid" ? "Paid ✓ · buy another" : "Buy now";
  return { text: `${again} · ${price}`, disabled: false, kind: "buy" };
}

function stateLabel(sk, s, now) {
  if (s === "scheduled") return `Starts in ${clock(Date.parse(sk.starts_at) - now)}`;
  if (s === "open") return sk.ends_at ? `Ends in ${clock(Date.parse(sk.ends_at) - now)}` : "On now";
  if (s === "sold_out") return "Sold out";
  return "Ended";
}

const products = new Map(); // product id → card-shaped product, or a pending fetch

function seckillTitle(sk) {
  const product = state.cards.get(sk.product_id) || products.get(sk.product_id);
  if (product && product.title) return `Flash sale · ${product.title}`;
  if (!products.has(sk.product_id)) {
    products.set(sk.product_id, null);
    api("GET", `/api/products/${encodeURIComponent(sk.product_id)}/public`)
      .then((p) => { products.set(sk.product_id, p); renderSeckills(); })
      .catch(() => { /* keep the generic title */ });
  }
  return "Flash sale";
}

function renderSeckill(sk) {
  const box = $("#seckills");
  let node = box.querySelector(`[data-seckill-id="${CSS.escape(sk.id)}"]`);
  if (!node) {
    node = el("article", { class: "seckill", dataset: { seckillId: sk.id } },
      el("div", { class: "sk-head" },
        el("span", { class: "sk-title" }), el("span", { class: "sk-price" })),
      el("div", { class: "row" },
        el("span", { class: "sk-state grow" }), el("span", { class: "sk-left" })),
      el("div", { class: "bar", attrs: { role: "progressbar", "aria-label": "Stock left" } },
        el("div")),
      el("button", { type: "button", class: "buy", onclick: () => buyOrPay(sk.id) }),
      el("div", { class: "error-text sk-message", attrs: { role: "status" } }));
    box.append(node);
  }
  const now = state.socket.serverNow();
  const s = effectiveState(sk, now);
  const mine = mineOf(sk.id);
  node.dataset.state = s;
  node.querySelector(".sk-title").textContent = seckillTitle(sk);
  node.querySelector(".sk-price").textContent = money(sk.price_cents, state.currency);
  node.querySelector(".sk-state").textContent = stateLabel(sk, s, now);
  const left = Math.max(0, Number(sk.left ?? sk.stock));
  const leftNode = node.querySelector(".sk-left");
  leftNode.textContent = `${left} left`;
  leftNode.dataset.left = String(left);
  const bar = node.querySelector(".bar");
  bar.setAttribute("aria-valuenow", String(left));
  bar.setAttribute("aria-valuemax", String(sk.stock));
  bar.firstElementChild.style.width = `${Math.min(100, (100 * left) / Math.max(1, sk.stock))}%`;
  const button = node.querySelector("button.buy");
  const look = buttonFor(sk, s, mine);
  if (button.textContent !== look.text) button.textContent = look.text;
  button.disabled = look.disabled;
  button.dataset.kind = look.kind;
  button.classList.toggle("paid", look.kind === "paid");
  node.querySelector(".sk-message").textContent = mine.message || "";
}

function renderSeckills() {
  const box = $("#seckills");
  for (const node of [...box.children]) {
    if (!state.seckills.has(node.dataset.seckillId)) node.remove();
  }
  for (const sk of state.seckills.values()) renderSeckill(sk);
}

const REFUSALS = {
  sold_out: "Sold out — every unit is taken.",
  limit_exceeded: "You have reached this flash sale's limit.",
  not_started: "Not started yet.",
  ended: "This flash sale has ended.",
  rate_limited: "Slow down a little and try again.",
};

async function buyOrPay(seckillId) {
  const sk = state.seckills.get(seckillId);
  const mine = mineOf(seckillId);
  if (!sk || mine.phase === "buying" || mine.phase === "paying") return;
  if (mine.phase === "reserved") { await pay(sk, mine); return; }
  mine.phase = "buying";
  mine.message = "";
  renderSeckill(sk);
  const requestId = newRequestId();
  try {
    const order = await api("POST", `/api/seckills/${encodeURIComponent(seckillId)}/orders`, {
      token: state.viewer.token, body: { room_id: roomId, qty: 1, request_id: requestId },
    });
    mine.phase = "reserved";
    mine.order = order;
    mine.bought += order.qty || 1;
  } catch (err) {
    mine.phase = mine.order && mine.order.status === "paid" ? "paid" : "idle";
    if (err.code === "limit_exceeded") mine.limit = true;
    if (err.code === "sold_out") sk.left = 0;
    if (err.code === "ended") sk.state = "ended";
    if (err.status === 401) await refreshViewer();
    mine.message = REFUSALS[err.code] || err.message;
  }
  renderSeckill(sk);
}

async function pay(sk, mine) {
  mine.phase = "paying";
  mine.message = "";
  renderSeckill(sk);
  try {
    mine.order = await api("POST", `/api/orders/${encodeURIComponent(mine.order.id)}/pay`,
      { token: state.viewer.token });
    mine.phase = "paid";
  } catch (err) {
    if (err.code === "expired") {
      mine.phase = "idle";
      mine.bought = Math.max(0, mine.bought - (mine.order.qty || 1));
      mine.order = null;
      mine.message = "Your reservation expired; the units went back on sale.";
    } else {
      mine.phase = "reserved";
      mine.message = err.status === 404 ? "Payment is not available on this server." : err.message;
    }
  }
  renderSeckill(sk);
}

// ---------- chat, likes, viewers, ticker ----------

function chatLine(line) {
  return el("li", { dataset: { chatId: line.id, viewerId: line.viewer_id } },
    el("span", { class: "name", text: line.name || "Guest" }),
    el("span", { class: "text", text: line.text }));
}

function addChat(line) {
  if (line.room_id && line.room_id !== roomId) return;
  const list = $("#chat");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(chatLine(line));
  while (list.children.length > MAX_CHAT) list.firstElementChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function hideChat(chatId) {
  for (const node of $("#chat").querySelectorAll("li")) {
    if (node.dataset.chatId === String(chatId)) node.remove();
  }
}

function sendChat() {
  const input = $("#chat-input");
  const text = input.value.trim();
  if (!text) return;
  if (text.length > 500) { $("#chat-error").textContent = "At most 500 characters."; return; }
  if (!state.socket || !state.socket.send({ type: "chat", text })) {
    $("#chat-error").textContent = "Not connected — your message was not sent.";
    return;
  }
  $("#chat-error").textContent = "";
  input.value = "";
}

function like() {
  state.likes += 1;
  state.pendingLikes += 1;
  $("#likes").textContent = String(state.likes);
  if (state.pendingLikes === 1) {
    setTimeout(() => {
      const count = state.pendingLikes;
      state.pendingLikes = 0;
      if (count && state.socket) state.socket.send({ type: "like", count });
    }, 400);
  }
}

let tickerTimer = null;
function ticker(count) {
  const node = $("#ticker");
  node.textContent = `${count} just bought`;
  node.classList.remove("hidden");
  clearTimeout(tickerTimer);
  tickerTimer = setTimeout(() => node.classList.add("hidden"), 4000);
}

function setViewers(count) {
  $("#viewers").textContent = `${count} watching`;
}

// ---------- events ----------

function applySnapshot(snap) {
  if (snap.room) {
    state.room = { ...state.room, ...snap.room };
    renderHead();
  }
  state.cards = new Map((snap.cards || []).map((p) => [p.id, p]));
  state.seckills = new Map((snap.seckills || []).map((sk) => [sk.id, sk]));
  if (typeof snap.viewers === "number") setViewers(snap.viewers);
  if (typeof snap.likes === "number") {
    state.likes = snap.likes;
    $("#likes").textContent = String(snap.likes);
  }
  $("#chat").replaceChildren();
  for (const line of snap.chat || []) addChat(line);
  renderCards();
  renderSeckills();
  if (snap.room) startStreamIfChanged();
}

let streamedFor = null;
function startStreamIfChanged() {
  const key = `${state.room.status}|${state.room.stream_url || ""}`;
  if (key !== streamedFor) { streamedFor = key; startStream(); }
}

function onEvent(event) {
  switch (event.type) {
    case "snapshot": applySnapshot(event); break;
    case "card": state.cards.set(event.product.id, event.product); renderCards(); renderSeckills(); break;
    case "uncard": state.cards.delete(event.product_id); renderCards(); break;
    case "seckill": {
      const { type, seq, ts, ...sk } = event;
      state.seckills.set(sk.id, { ...state.seckills.get(sk.id), ...sk });
      renderSeckills();
      break;
    }
    case "stock": {
      const sk = state.seckills.get(event.seckill_id);
      if (sk) { sk.left = event.left; renderSeckill(sk); }
      break;
    }
    case "chat": addChat(event); break;
    case "chat_hidden": hideChat(event.chat_id); break;
    case "likes":
      if (!event.room_id || event.room_id === roomId) {
        state.likes = event.total + state.pendingLikes;
        $("#likes").textContent = String(state.likes);
      }
      break;
    case "viewers": if (!event.room_id || event.room_id === roomId) setViewers(event.count); break;
    case "status": setStatus(event.status); break;
    case "ticker": ticker(event.count); break;
    case "order": {
      const order = event.order;
      if (order && order.seckill_id) {
        const mine = mineOf(order.seckill_id);
        if (order.status === "paid") mine.phase = "paid";
        const sk = state.seckills.get(order.seckill_id);
        if (sk) renderSeckill(sk);
      }
      break;
    }
    case "error":
      if (!event.request_id) $("#chat-error").textContent = event.message || event.error;
      break;
    default: break;
  }
}

function connState(s) {
  const labels = { connecting: "Connecting…", reconnecting: "Connection lost — reconnecting…",
    live: "", closed: "Disconnected." };
  $("#conn").textContent = labels[s] ?? "";
  document.body.dataset.connection = s;
}

// ---------- start ----------

async function refreshViewer() {
  const name = `Guest ${Math.floor(1000 + Math.random() * 9000)}`;
  const viewer = await api("POST", "/api/viewers", { body: { name } });
  state.viewer = viewer;
  store.setItem(VIEWER_KEY, JSON.stringify({ id: viewer.id, token: viewer.token }));
  return viewer.token;
}

async function loadViewer() {
  try {
    const saved = JSON.parse(store.getItem(VIEWER_KEY) || "null");
    if (saved && typeof saved.token === "string") { state.viewer = saved; return; }
  } catch { /* a damaged entry: mint a new viewer */ }
  await refreshViewer();
}

// A returning viewer (same token) gets back its reservations and purchases in this room.
async function restoreOrders() {
  const query = new URLSearchParams({ room_id: roomId, limit: "100" });
  const page = await api("GET", `/api/orders?${query}`, { token: state.viewer.token });
  for (const order of page.items || []) {
    if (!["reserved", "paid"].includes(order.status)) continue;
    const mine = mineOf(order.seckill_id);
    mine.bought += order.qty;
    if (order.status === "reserved") { mine.phase = "reserved"; mine.order = order; }
    else if (mine.phase !== "reserved") { mine.phase = "paid"; mine.order = order; }
  }
}

async function main() {
  wireVideo();
  $("#chat-form").addEventListener("submit", (e) => { e.preventDefault(); sendChat(); });
  $("#chat-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.isComposing) { e.preventDefault(); sendChat(); }
  });
  $("#like").addEventListener("click", like);
  try {
    const room = await api("GET", `/api/rooms/${encodeURIComponent(roomId)}/public`);
    state.room = room;
    state.currency = room.currency || "CNY";
    applyBranding(room.dealer);
    renderHead();
    await loadViewer();
  } catch (err) {
    $("#title").textContent = err.status === 404 ? "Room not found" : "Cannot load this room";
    placeholder(err.status === 404 ? "Room not found" : "Cannot load this room",
      err.status === 404 ? "Check the link you followed." : err.message);
    return;
  }
  startStreamIfChanged();
  try { await restoreOrders(); } catch (err) {
    if (err.status === 401) await refreshViewer(); // a stale token: start as a new viewer
  }
  state.socket = new RoomSocket(roomId, {
    token: state.viewer.token,
    onEvent,
    onState: connState,
    refreshToken: refreshViewer,
    onFatal: (_code, why) => { $("#conn").textContent = `Cannot join: ${why}.`; },
  });
  state.socket.connect();
  setInterval(renderSeckills, 250);
  window.lcWatch = { state, drop: () => state.socket.drop() };
}

main().catch((err) => {
  console.warn("watch page failed to start", err);
  placeholder("Something went wrong", "Reload the page to try again.");
});
