// Shared by every page: the HTTP client, DOM building (text only, never HTML from data),
// tokens from the URL fragment, money formatting and a reconnecting room WebSocket.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

export async function api(method, path, { token, body, raw } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, "network", "the server cannot be reached");
  }
  if (raw && response.ok) return response;
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    throw new ApiError(response.status, (data && data.error) || "http_" + response.status,
      (data && data.message) || response.statusText);
  }
  return data;
}

// el("div", {class: "x", text: "hi", onclick: fn, attrs: {...}}, child, "text child")
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "attrs") for (const [a, v] of Object.entries(value)) node.setAttribute(a, v);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

export function money(cents, currency = "CNY") {
  const amount = Number(cents || 0) / 100;
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(amount);
  } catch {
    return `${amount.toFixed(2)} ${currency}`;
  }
}

export function tokenParts(token) {
  const match = /^([a-z]+)_([^_]+)_/.exec(token || "");
  return match ? { role: match[1], id: match[2] } : null;
}

// A console's token: from "#token=…" (then removed from the address bar, so it is never
// shared by copying the URL), else from this tab's session storage.
export function consoleToken(role) {
  const key = `lc.${role}.token`;
  const params = new URLSearchParams(location.hash.slice(1));
  const fromHash = params.get("token");
  if (fromHash) {
    safeStorage("session").setItem(key, fromHash);
    history.replaceState(null, "", location.pathname + location.search);
    return fromHash;
  }
  return safeStorage("session").getItem(key);
}

export function rememberToken(role, token) {
  const store = safeStorage("session");
  if (token) store.setItem(`lc.${role}.token`, token);
  else store.removeItem(`lc.${role}.token`);
}

const memory = new Map();
const memoryStore = {
  getItem: (k) => (memory.has(k) ? memory.get(k) : null),
  setItem: (k, v) => memory.set(k, String(v)),
  removeItem: (k) => memory.delete(k),
};

// Storage can be missing or throw (a third-party iframe with storage blocked): fall back to memory.
export function safeStorage(kind) {
  try {
    const store = kind === "local" ? window.localStorage : window.sessionStorage;
    const probe = "lc.probe";
    store.setItem(probe, "1");
    store.removeItem(probe);
    return store;
  } catch {
    return memoryStore;
  }
}

export function newRequestId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (input) { input.focus(); input.select(); }
    return false;
  }
}

export function shortTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

// Close codes after which reconnecting cannot help (design.md §5).
const FATAL = { 4403: "not allowed in this room", 4404: "this room does not exist",
  1008: "this site may not open the room" };

// One room connection that reconnects with exponential backoff and resumes with
// `since=<last seq>`; room events already seen are dropped, so a replay is applied once.
export class RoomSocket {
  constructor(roomId, { token, onEvent, onState, onFatal, refreshToken }) {
    this.roomId = roomId;
    this.token = token;
    this.onEvent = onEvent;
    this.onState = onState || (() => {});
    this.onFatal = onFatal || (() => {});
    this.refreshToken = refreshToken;
    this.lastSeq = null;
    this.offset = 0;
    this.attempt = 0;
    this.ws = null;
    this.stopped = false;
    this.pinger = null;
    this.retryTimer = null;
  }

  serverNow() { return Date.now() + this.offset; }

  connect() {
    if (this.stopped) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = new URLSearchParams({ token: this.token });
    if (this.lastSeq !== null) query.set("since", String(this.lastSeq));
    const url = `${scheme}://${location.host}/ws/rooms/${encodeURIComponent(this.roomId)}?${query}`;
    this.onState(this.attempt ? "reconnecting" : "connecting");
    let ws;
    try { ws = new WebSocket(url); } catch { this.retry(); return; }
    this.ws = ws;
    ws.onmessage = (message) => this.receive(message.data);
    ws.onclose = (close) => this.closed(close.code);
    ws.onerror = () => {};
  }

  receive(data) {
    let event;
    try { event = JSON.parse(data); } catch { return; }
    if (!event || typeof event !== "object" || typeof event.type !== "string") return;
    const personal = ["hello", "snapshot", "order", "error"].includes(event.type);
    if (event.type === "hello") {
      this.attempt = 0;
      if (typeof event.server_time === "number") this.offset = event.server_time - Date.now();
      this.onState("live");
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.send({ type: "ping" }), 25000);
    }
    if (typeof event.seq === "number") {
      if (event.type === "snapshot") this.lastSeq = event.seq;
      else if (!personal) {
        if (this.lastSeq !== null && event.seq <= this.lastSeq) return;
        this.lastSeq = event.seq;
      }
    }
    // an event just delivered was stamped before now: its ts bounds the clock offset from below
    if (!personal && typeof event.ts === "number") {
      const bound = event.ts - Date.now();
      if (bound > this.offset) this.offset = bound;
    }
    try { this.onEvent(event); } catch (err) { console.warn("event handler failed", err); }
  }

  async closed(code) {
    clearInterval(this.pinger);
    this.ws = null;
    if (this.stopped) return;
    if (FATAL[code]) {
      this.stopped = true;
      this.onState("closed");
      this.onFatal(code, FATAL[code]);
      return;
    }
    if (code === 4401 && this.refreshToken) {
      try { this.token = await this.refreshToken(); } catch { /* retried below */ }
    }
    this.retry();
  }

  retry() {
    if (this.stopped) return;
    this.onState("reconnecting");
    const delay = Math.min(15000, 500 * 2 ** this.attempt) * (0.75 + Math.random() * 0.5);
    this.attempt = Math.min(this.attempt + 1, 10);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  // Drop the connection as a network failure would (tests and "reconnect now" use it).
  drop() { if (this.ws) this.ws.close(); }

  close() {
    this.stopped = true;
    clearInterval(this.pinger);
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000);
  }
}
