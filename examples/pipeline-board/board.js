// The pipeline board: one column per stage, a card per lead, live from `leadEvents`.
//
// Query string: ?api=http://127.0.0.1:8080 (the gateway; that is the default) and
// ?token=<JWT> to sign in at once (tests); otherwise paste the token printed by `make run`.
// The page calls the gateway from its own origin, so the gateway must list this origin in
// LEADGATE_CORS_ORIGINS (`leadgate serve --demo` allows every loopback origin).

const params = new URLSearchParams(location.search);
const API = (params.get("api") || "http://127.0.0.1:8080").replace(/\/+$/, "");
const GRAPHQL_URL = `${API}/graphql`;
const WS_URL = GRAPHQL_URL.replace(/^http/, "ws");

const CARD = `fragment Card on Lead {
  id businessName requestedAmount updatedAt stage { id } primaryAdvisor { name }
}`;
// The newest change's event id, read before the leads: the subscription resumes after it, so
// whatever happens while the leads load is replayed (applying an event twice is harmless).
const BOARD = `query Board {
  stages { id stageLabel color position }
  latest: leadsConnection(last: 1, updatedSince: "1970-01-01T00:00:00Z") {
    edges { node { history(limit: 1) { id } } }
  }
}`;
const LEADS = `query BoardLeads($page: Int!) {
  leads(page: $page, limit: 100) { hasMore nodes { ...Card } }
} ${CARD}`;
const EVENTS = `subscription BoardEvents($after: ID) {
  leadEvents(after: $after) { id type lead { ...Card } }
} ${CARD}`;
const MOVE = `mutation MoveCard($id: ID!, $stageId: ID!, $key: String!) {
  moveLead(id: $id, stageId: $stageId, idempotencyKey: $key) { ...Card }
} ${CARD}`;

const money = new Intl.NumberFormat("en-US", {
  style: "currency", currency: "USD", maximumFractionDigits: 0,
});

const state = {
  token: null,
  stages: [],       // by position
  leads: new Map(), // id → lead (the Card fragment)
  cards: new Map(), // id → card element
  after: null,      // the last event id applied: where a new subscription resumes
  socket: null,
  loading: null,    // the board's first load: a subscription starts after it
  retries: 0,
};

const $ = (id) => document.getElementById(id);

function setStatus(text, kind) {
  $("status").textContent = text;
  document.body.dataset.state = kind;
}

function showError(text) {
  const box = $("error");
  box.textContent = box.hidden ? text : `${box.textContent}\n${text}`;
  box.hidden = false;
  setStatus("error", "error");
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

// --- GraphQL over HTTP --------------------------------------------------------------------

async function graphql(query, variables = {}) {
  let response;
  try {
    response = await fetch(GRAPHQL_URL, {
      method: "POST",
      headers: {
        "Authorization": `Bearer ${state.token}`,
        "Content-Type": "application/json",
        "Accept": "application/graphql-response+json, application/json",
      },
      body: JSON.stringify({ query, variables }),
    });
  } catch (err) {
    // A CORS refusal looks exactly like a network failure to the page.
    throw new Error(
      `Cannot reach the gateway at ${API} (${err.message}): is it running, and is this ` +
      `page's origin ${location.origin} in its LEADGATE_CORS_ORIGINS?`,
    );
  }
  const body = await response.json().catch(() => ({}));
  if (body.errors?.length) {
    const first = body.errors[0];
    const code = first.extensions?.code ? `${first.extensions.code}: ` : "";
    throw new Error(`${code}${first.message}`);
  }
  if (!response.ok || !body.data) throw new Error(`The gateway answered ${response.status}`);
  return body.data;
}

async function loadBoard() {
  const board = await graphql(BOARD);
  state.stages = [...board.stages].sort((a, b) => a.position - b.position);
  const latest = board.latest.edges[0]?.node.history[0]?.id ?? null;
  const leads = [];
  for (let page = 1; ; page += 1) {
    const { leads: found } = await graphql(LEADS, { page });
    leads.push(...found.nodes);
    if (!found.hasMore) break;
  }
  renderColumns();
  for (const lead of leads) applyLead(lead, { append: true });
  return latest;
}

// --- rendering ----------------------------------------------------------------------------

function renderColumns() {
  const board = $("board");
  board.replaceChildren();
  state.leads.clear();
  state.cards.clear();
  for (const stage of state.stages) {
    const column = document.createElement("section");
    column.className = "column";
    column.dataset.stageId = stage.id;
    column.style.setProperty("--stage-color", stage.color);
    const title = document.createElement("h2");
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = stage.stageLabel;
    const count = document.createElement("span");
    count.className = "count";
    title.append(label, count);
    const cards = document.createElement("div");
    cards.className = "cards";
    column.append(title, cards);
    board.append(column);
  }
  updateCounts();
}

function column(stageId) {
  return $("board").querySelector(`.column[data-stage-id="${CSS.escape(stageId)}"]`);
}

function updateCounts() {
  for (const col of $("board").querySelectorAll(".column")) {
    col.querySelector(".count").textContent = String(col.querySelector(".cards").children.length);
  }
}

function newCard(lead) {
  const card = document.createElement("article");
  card.className = "card";
  card.dataset.leadId = lead.id;
  const name = document.createElement("div");
  name.className = "name";
  const amount = document.createElement("div");
  amount.className = "amount";
  const advisor = document.createElement("div");
  advisor.className = "advisor";
  const select = document.createElement("select");
  select.setAttribute("aria-label", "Stage");
  for (const stage of state.stages) select.add(new Option(stage.stageLabel, stage.id));
  select.addEventListener("change", () => moveCard(lead.id, select.value));
  card.append(name, amount, advisor, select);
  return card;
}

function fillCard(card, lead) {
  card.querySelector(".name").textContent = lead.businessName || "(no name)";
  const amount = lead.requestedAmount == null ? null : Number(lead.requestedAmount);
  card.querySelector(".amount").textContent =
    amount == null || Number.isNaN(amount) ? "no amount requested" : money.format(amount);
  card.querySelector(".advisor").textContent = lead.primaryAdvisor?.name ?? "Unassigned";
  card.querySelector("select").value = lead.stage.id;
  card.dataset.stageId = lead.stage.id;
}

// Puts a lead on the board as `lead` says, unless the board already shows a newer version
// (a replayed event, or a mutation's answer overtaken by a live event).
function applyLead(lead, { append = false } = {}) {
  const known = state.leads.get(lead.id);
  if (known && Date.parse(known.updatedAt) > Date.parse(lead.updatedAt)) return;
  const target = column(lead.stage.id);
  if (!target) return; // a stage created after the board loaded: reload to see it
  state.leads.set(lead.id, lead);
  let card = state.cards.get(lead.id);
  if (!card) {
    card = newCard(lead);
    state.cards.set(lead.id, card);
  }
  const moved = card.dataset.stageId !== lead.stage.id;
  fillCard(card, lead);
  if (moved || !card.isConnected) {
    const cards = target.querySelector(".cards");
    if (append) cards.append(card);
    else cards.prepend(card);
    updateCounts();
  }
}

// --- moving a card ------------------------------------------------------------------------

function idempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // Pages served over plain http from a non-loopback host are not a secure context.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

async function moveCard(leadId, stageId) {
  const card = state.cards.get(leadId);
  const key = idempotencyKey();
  card.classList.add("saving");
  try {
    // One key per pick: retrying this request (say after a timeout) can never move it twice.
    const data = await graphql(MOVE, { id: leadId, stageId, key });
    applyLead(data.moveLead);
  } catch (err) {
    showError(`Could not move the lead: ${err.message}`);
    const known = state.leads.get(leadId);
    if (known) card.querySelector("select").value = known.stage.id;
  } finally {
    card.classList.remove("saving");
  }
}

// --- live updates: graphql-transport-ws over a bare WebSocket -------------------------------
// https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md

const SUBSCRIPTION_ID = "board";

function connect() {
  setStatus("connecting…", "connecting");
  const socket = new WebSocket(WS_URL, "graphql-transport-ws");
  state.socket = socket;
  let acknowledged = false;
  const send = (message) => socket.send(JSON.stringify(message));

  socket.onopen = () => {
    send({ type: "connection_init", payload: { Authorization: `Bearer ${state.token}` } });
  };
  socket.onmessage = (message) => {
    const frame = JSON.parse(message.data);
    switch (frame.type) {
      case "connection_ack":
        acknowledged = true;
        state.retries = 0;
        // Subscribe once the board is loaded, resuming `after` its newest change (or the
        // last event seen before a reconnection): what was missed comes first, then live ones.
        state.loading.then(() => {
          if (state.socket !== socket) return;
          send({
            id: SUBSCRIPTION_ID,
            type: "subscribe",
            payload: { query: EVENTS, variables: { after: state.after } },
          });
          setStatus("live", "live");
        }, () => {}); // a failed load is reported by signIn
        break;
      case "ping":
        send({ type: "pong" });
        break;
      case "next":
        if (frame.payload.errors?.length) {
          showError(`Live updates: ${frame.payload.errors[0].message}`);
          break;
        }
        state.after = frame.payload.data.leadEvents.id;
        applyLead(frame.payload.data.leadEvents.lead);
        break;
      case "error":
        showError(`Live updates refused: ${frame.payload?.[0]?.message ?? "error"}`);
        break;
      case "complete":
        break;
      default:
        break;
    }
  };
  socket.onclose = (event) => {
    if (state.socket !== socket) return; // replaced by a newer sign-in
    state.socket = null;
    if (event.code === 4401) {
      // The token expired (or was never valid): a new one is needed, then we resume.
      showError(`Live updates stopped: ${event.reason || "unauthorized"}. Paste a new token.`);
      return;
    }
    if (!acknowledged) {
      // Refused before the handshake completed: a WebSocket from an origin the gateway does
      // not allow gets 403, which the page only sees as code 1006.
      showError(
        `Live updates unavailable: the WebSocket to ${WS_URL} closed (${event.code}) ` +
        "before the gateway accepted it.",
      );
    } else {
      setStatus("reconnecting…", "connecting");
    }
    // Back off 1 s, 2 s, 4 s … up to 15 s; the next subscription resumes with `after`.
    const delay = Math.min(1000 * 2 ** state.retries, 15000);
    state.retries += 1;
    setTimeout(() => {
      if (state.token && !state.socket) connect();
    }, delay);
  };
}

// --- signing in ---------------------------------------------------------------------------

async function signIn(token) {
  state.token = token.trim();
  state.after = null;
  state.retries = 0;
  const old = state.socket;
  state.socket = null;
  old?.close(1000, "signed in again");
  clearError();
  setStatus("loading…", "loading");
  // The socket's handshake runs while the leads load; it subscribes when they are in.
  state.loading = loadBoard().then((latest) => {
    state.after = latest;
  });
  connect();
  try {
    await state.loading;
  } catch (err) {
    showError(err.message);
  }
}

$("gateway").textContent = `gateway: ${API}`;
$("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token").value;
  if (token.trim()) signIn(token);
});
const initial = params.get("token");
if (initial) {
  $("token").value = initial;
  signIn(initial);
}
