// The conformance check in the browser (admins): one identity's messages live, as the hub
// judges them — accepted with its readings, src and seq and how many storage holds, or refused
// with the reason and the field. The same judgement as `millstream-hub devices watch NAME`,
// streamed by the hub over the WebSocket /api/v1/identities/{name}/watch (docs/api.md).
import { accessToken, api, refresh, type Identity, type Me } from "../api";
import { badge, clear, fmtTime, h } from "../dom";
import { linkHandler } from "../router";
import { identityProblem } from "./identities";

/** One judged message (docs/api.md "Watching an identity"). */
export interface Verdict {
  type: "verdict";
  topic: string;
  kind: string;
  received_at: number;
  accepted: boolean;
  text: string;
  reason: string | null;
  field: string | null;
  readings: number | null;
  src: string | null;
  seq: number | null;
  stored: number | null;
}

type ServerMessage = Verdict | { type: "watching"; name: string; topics: string[] } | { type: "error"; error: string };

const KEEP = 500; // rows kept on the page, newest first
// Close codes the hub uses (as /ws: 4xxx mirrors HTTP statuses).
const UNAUTHORIZED = 4401;
const FINAL = new Set([4403, 4404]); // forbidden, unknown identity: trying again changes nothing

function storage(v: Verdict): string {
  if (v.stored === null || v.readings === null) return "–";
  if (v.stored >= v.readings) return `all ${v.readings} stored`;
  if (v.stored > 0) return `${v.stored} of ${v.readings} stored so far`;
  return "not stored yet";
}

function verdictBadge(v: Verdict): HTMLElement {
  if (!v.accepted) return badge("faulted", "refused");
  return v.reason ? badge("stale", "partly refused") : badge("online", "accepted");
}

function describe(i: Identity): string {
  const where = i.kind === "agent" ? "any machine of its line" : `machines ${i.machines.join(", ")}`;
  return `${i.kind} · ${i.site} / ${i.line} · ${where} · src ${i.src}`;
}

export function identityWatchPage(root: HTMLElement, params: string[], me: Me | null): () => void {
  const name = decodeURIComponent(params[0] ?? "");
  const back = h("a", { href: "/identities", onclick: linkHandler("/identities") }, "← Broker identities");
  const state = h("span", { class: "live-ind", id: "watch-state", "data-state": "connecting" }, "connecting…");
  const about = h("p", { class: "muted", id: "watch-about" });
  const topics = h("p", { class: "muted small", id: "watch-topics" });
  const problem = h("div", { class: "banner error-banner", id: "watch-problem", hidden: true, role: "alert" });
  const rows = h("tbody", { id: "watch-rows" });
  const empty = h("p", { class: "muted", id: "watch-empty" }, "Nothing yet: publish from the device now; each message shows here the moment the hub judges it.");
  const clearRows = h("button", { class: "small", type: "button", id: "watch-clear" }, "Clear");
  const retry = h("button", { class: "small", type: "button", id: "watch-retry", hidden: true }, "Reconnect");
  root.append(
    back,
    h("div", { class: "page-head" }, h("h1", null, "Watch ", h("span", { id: "watch-name" }, name)), state, clearRows, retry),
    about,
    h(
      "p",
      { class: "muted" },
      "Every message this identity publishes, as the hub judges it: accepted (with what storage holds of it) or refused, with the reason and the field it is about.",
    ),
    topics,
    problem,
    h(
      "section",
      { class: "card" },
      empty,
      h(
        "div",
        { class: "scroll" },
        h(
          "table",
          { class: "grid watch", id: "watch-log" },
          h("thead", null, h("tr", null, ...["Received", "Topic", "Verdict", "What the hub says", "Field", "Storage"].map((t) => h("th", null, t)))),
          rows,
        ),
      ),
    ),
  );
  if (me?.role !== "admin") {
    state.hidden = true;
    clearRows.hidden = true;
    clear(problem, "Watching an identity is for admins.");
    problem.hidden = false;
    return () => {};
  }

  let ws: WebSocket | null = null;
  let closed = false;
  let timer: number | undefined;
  let backoff = 1000;
  let refused = 0; // 4401 closes since the last accepted login

  const show = (s: string, text: string) => {
    state.dataset.state = s;
    state.className = `live-ind live-${s === "watching" ? "live" : s === "connecting" ? "connecting" : "down"}`;
    state.textContent = text;
  };
  const fail = (text: string | null) => {
    problem.hidden = text === null;
    problem.textContent = text ?? "";
  };

  clearRows.onclick = () => {
    rows.replaceChildren();
    empty.hidden = false;
  };
  retry.onclick = () => {
    retry.hidden = true;
    backoff = 1000;
    connect();
  };

  api
    .identity(name)
    .then((i) => {
      about.textContent = describe(i) + (i.disabled ? " · disabled: the broker refuses it until it is enabled" : "");
      about.dataset.disabled = String(i.disabled);
    })
    .catch((e: unknown) => fail(identityProblem(e, name)));

  function add(v: Verdict): void {
    empty.hidden = true;
    const row = h(
      "tr",
      { class: "verdict", "data-accepted": String(v.accepted), "data-kind": v.kind, "data-reason": v.reason ?? "" },
      h("td", { class: "when" }, fmtTime(v.received_at, true)),
      h("td", null, h("code", null, v.topic)),
      h("td", null, verdictBadge(v), v.reason ? h("code", { class: "reason" }, ` ${v.reason}`) : null),
      h("td", { class: "said" }, v.text),
      h("td", { class: "field" }, v.field ? h("code", null, v.field) : "–"),
      h("td", { class: "stored" }, storage(v)),
    );
    rows.prepend(row);
    while (rows.children.length > KEEP) rows.lastElementChild?.remove();
  }

  function connect(): void {
    const token = accessToken();
    if (!token || closed) return;
    show("connecting", "connecting…");
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    // No credentials in the URL: it ends up in server and proxy logs. The token is the first
    // message, as on /ws.
    const socket = new WebSocket(`${proto}//${location.host}/api/v1/identities/${encodeURIComponent(name)}/watch`);
    ws = socket;
    let said = ""; // the hub's words before it closed the socket
    socket.onopen = () => socket.send(JSON.stringify({ type: "auth", token: accessToken() ?? token }));
    socket.onmessage = (ev: MessageEvent<string>) => {
      let doc: ServerMessage;
      try {
        doc = JSON.parse(ev.data) as ServerMessage;
      } catch {
        return;
      }
      if (doc.type === "watching") {
        backoff = 1000;
        refused = 0;
        fail(null);
        show("watching", "watching");
        topics.textContent = `Listening on ${doc.topics.join(", ")}`;
      } else if (doc.type === "verdict") add(doc);
      else if (doc.type === "error") said = doc.error;
    };
    socket.onclose = (ev: CloseEvent) => {
      if (ws !== socket || closed) return;
      ws = null;
      if (ev.code === UNAUTHORIZED && refused++ === 0) {
        // The access token expired: refresh it and connect again at once (the first time).
        void refresh().then((ok) => {
          if (ok) connect();
        });
        return;
      }
      if (FINAL.has(ev.code)) {
        show("stopped", "stopped");
        fail(said || `The hub refused the watch (${ev.code}).`);
        retry.hidden = false;
        return;
      }
      // The broker away (4503), the hub restarting (1012) or the network: try again, slower
      // each time, and say why meanwhile.
      const wait = backoff;
      backoff = Math.min(backoff * 2, 15_000);
      show("down", `reconnecting in ${Math.round(wait / 1000)} s`);
      fail(said ? `${said} — trying again.` : "The connection to the hub dropped — trying again.");
      timer = window.setTimeout(connect, wait);
    };
  }

  connect();
  return () => {
    closed = true;
    window.clearTimeout(timer);
    ws?.close();
    ws = null;
  };
}
