// Alerts: what is wrong now and what was, with acknowledge for operators (docs/alerts.md), and
// beside them what the machines raised themselves (docs/events.md). Polled like the fleet view.
import { api, ApiError, type Alert, type Command, type MachineEvent, type Me } from "../api";
import { badge, clear, fmtAge, fmtTime, fmtValue, h } from "../dom";
import { LiveStream } from "../live";
import { linkHandler } from "../router";

// Alert changes arrive on /ws the moment they are recorded; polling is the fallback.
const POLL_MS = 15_000;
const SEVERITY_RANK: Record<string, number> = { critical: 0, warning: 1, info: 2 };
// An acknowledge the agent has not answered yet is asked about again this long (as a write is).
const ACK_POLL_MS = 1_000;
const ACK_POLL_FOR_MS = 30_000;

/** Open alerts first by severity, then newest first. */
export function bySeverity(alerts: Alert[]): Alert[] {
  return [...alerts].sort((a, b) => (SEVERITY_RANK[a.severity] ?? 3) - (SEVERITY_RANK[b.severity] ?? 3) || b.ts - a.ts);
}

export function severityBadge(a: Alert): HTMLElement {
  const look = a.severity === "critical" ? "faulted" : a.severity === "warning" ? "stale" : "offline";
  return badge(look, a.severity);
}

export function where(a: Alert): HTMLElement {
  const path = `/machines/${a.site}/${a.line}/${a.machine}`;
  const name = `${a.site} / ${a.line} / ${a.machine}`;
  const link = a.tag === "(agent)" ? h("span", null, `agent ${a.machine}`) : h("a", { href: path, onclick: linkHandler(path), class: "machine-link" }, name);
  return h("span", null, link, a.tag && a.tag !== "(agent)" ? ` · ${a.tag}` : "");
}

/** A machine event's severity (OPC-UA's 1-1000) in the alerts' three words. */
export function eventSeverity(e: MachineEvent): HTMLElement {
  const [look, word] = e.severity >= 700 ? ["faulted", "critical"] : e.severity >= 400 ? ["stale", "warning"] : ["offline", "info"];
  return badge(look, `${word} ${e.severity}`);
}

/** The events an operator may acknowledge: of each occurrence (rows come newest first) the newest
 * row, when it is an OPC-UA condition still active and not acknowledged (docs/events.md). */
export function acknowledgeable(rows: MachineEvent[]): Set<MachineEvent> {
  const seen = new Set<string>();
  const out = new Set<MachineEvent>();
  for (const e of rows) {
    const key = `${e.site}/${e.line}/${e.machine}/${e.id}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (typeof e.fields.condition === "string" && e.fields.acked === false && e.state === "active") out.add(e);
  }
  return out;
}

function commandLook(status: Command["status"]): string {
  return status === "done" ? "online" : status === "pending" ? "stale" : "faulted";
}

export function alertsPage(root: HTMLElement, _params: string[], me: Me | null): () => void {
  const canAck = me !== null && (me.role === "operator" || me.role === "admin");
  const state = h(
    "select",
    { id: "alert-state", "aria-label": "State" },
    ...[
      ["open", "Active and acknowledged"],
      ["active", "Active"],
      ["acknowledged", "Acknowledged"],
      ["cleared", "Cleared"],
      ["", "All"],
    ].map(([v, t]) => h("option", { value: v }, t)),
  ) as HTMLSelectElement;
  const machine = h("input", { id: "alert-machine", placeholder: "machine", "aria-label": "Machine", size: 14 }) as HTMLInputElement;
  const banner = h("div", { class: "banner", hidden: true, role: "status" });
  const body = h("section", { class: "card", id: "alerts-table" }, h("p", { class: "muted" }, "Loading…"));
  const events = h("section", { class: "card", id: "machine-events" }, h("p", { class: "muted" }, "Loading…"));
  // What the machine's agent answered to the last acknowledge: kept across redraws of the table.
  const ackResult = h("p", { id: "event-ack-result", hidden: true, role: "status" });
  state.onchange = () => void load();
  machine.onchange = () => void load();
  root.append(
    h("div", { class: "page-head" }, h("h1", null, "Alerts"), h("span", { class: "filters" }, state, " ", machine)),
    banner,
    body,
    h("h2", null, "Raised by the machines"),
    ackResult,
    events,
  );
  let alive = true;
  let timer: number | undefined;

  async function load(): Promise<void> {
    window.clearTimeout(timer);
    try {
      const params: Record<string, string | number> = { limit: 200 };
      if (state.value) params.state = state.value;
      if (machine.value.trim()) params.machine = machine.value.trim();
      const eventParams: Record<string, string | number> = { limit: 100 };
      if (params.machine) eventParams.machine = params.machine;
      const [rows, raised] = await Promise.all([api.alerts(params), api.events(eventParams)]);
      if (!alive) return;
      banner.hidden = true;
      draw(state.value === "open" ? bySeverity(rows) : rows);
      drawEvents(raised);
    } catch (e) {
      if (!alive) return;
      banner.hidden = false;
      banner.textContent = `Cannot load alerts (${e instanceof Error ? e.message : String(e)}).`;
    } finally {
      if (alive) timer = window.setTimeout(() => void load(), POLL_MS);
    }
  }

  async function acknowledge(a: Alert): Promise<void> {
    const comment = window.prompt(`Acknowledge ${a.rule} on ${a.machine}: what are you doing about it?`, "");
    if (comment === null) return;
    try {
      await api.ackAlert(a.id, comment);
    } catch (e) {
      const text = e instanceof ApiError && e.status === 409 ? "It is no longer active." : e instanceof Error ? e.message : String(e);
      banner.hidden = false;
      banner.textContent = `Could not acknowledge: ${text}`;
    }
    await load();
  }

  function showAck(e: MachineEvent, c: Command): void {
    const said = c.status === "pending" ? "Sent; waiting for the agent's answer…" : (c.detail ?? "");
    ackResult.hidden = false;
    ackResult.dataset.status = c.status;
    ackResult.dataset.event = e.id;
    ackResult.replaceChildren(badge(commandLook(c.status), c.status), " ", `${e.machine}: ${e.message} — `, h("span", { id: "event-ack-detail" }, said));
  }

  async function acknowledgeEvent(e: MachineEvent, button: HTMLButtonElement): Promise<void> {
    const comment = window.prompt(`Acknowledge "${e.message}" on ${e.machine} (at the machine): what are you doing about it?`, "");
    if (comment === null) return;
    button.disabled = true;
    try {
      let c = await api.acknowledgeEvent(e, comment);
      showAck(e, c);
      const until = Date.now() + ACK_POLL_FOR_MS;
      while (c.status === "pending" && alive && Date.now() < until) {
        await new Promise((r) => window.setTimeout(r, ACK_POLL_MS));
        c = await api.command(c.id);
        showAck(e, c);
      }
    } catch (err) {
      ackResult.hidden = false;
      ackResult.dataset.status = "error";
      ackResult.dataset.event = e.id;
      ackResult.replaceChildren(badge("faulted", "not sent"), " ", `${e.machine}: ${err instanceof Error ? err.message : String(err)}`);
    }
    // The machine's own "acknowledged" event follows through the agent's buffer; the table shows it then.
    if (alive) await load();
  }

  function draw(rows: Alert[]): void {
    if (!rows.length) {
      clear(body, h("p", { class: "ok-text", id: "alerts-empty" }, state.value === "open" ? "No active alerts." : "No alerts match."));
      return;
    }
    const now = Date.now();
    clear(
      body,
      h(
        "div",
        { class: "scroll" },
        h(
          "table",
          { class: "grid alerts" },
          h("thead", null, h("tr", null, ...["Severity", "State", "Rule", "Where", "Value", "Since", "Why", "Acknowledged", ""].map((t) => h("th", null, t)))),
          h(
            "tbody",
            null,
            ...rows.map((a) =>
              h(
                "tr",
                { "data-id": a.id, "data-state": a.state, class: `sev-${a.severity}` },
                h("td", null, severityBadge(a)),
                h("td", null, a.state, a.found_late ? h("span", { class: "muted" }, " (found late)") : ""),
                h("td", null, h("code", null, a.rule)),
                h("td", null, where(a)),
                h("td", { class: "num" }, fmtValue(a.value)),
                h("td", { title: fmtTime(a.ts) }, a.cleared_ms ? `${fmtTime(a.ts)} – ${fmtTime(a.cleared_ms)}` : `${fmtAge(now - a.ts)} ago`),
                h("td", { class: "why" }, a.detail),
                h("td", null, a.acked_by ? `${a.acked_by}: ${a.ack_comment ?? ""}` : "–"),
                h("td", null, canAck && a.state === "active" ? h("button", { class: "small ack", onclick: () => void acknowledge(a) }, "Acknowledge") : ""),
              ),
            ),
          ),
        ),
      ),
    );
  }

  function drawEvents(rows: MachineEvent[]): void {
    if (!rows.length) {
      clear(events, h("p", { class: "muted", id: "events-empty" }, "No machine events."));
      return;
    }
    const open = canAck ? acknowledgeable(rows) : new Set<MachineEvent>();
    clear(
      events,
      h(
        "div",
        { class: "scroll" },
        h(
          "table",
          { class: "grid events" },
          h("thead", null, h("tr", null, ...["Severity", "When", "Where", "Source", "Type", "State", "Message", ""].map((t) => h("th", null, t)))),
          h(
            "tbody",
            null,
            ...rows.map((e) => {
              const path = `/machines/${e.site}/${e.line}/${e.machine}`;
              return h(
                "tr",
                { "data-event": e.id, "data-state": e.state ?? "" },
                h("td", null, eventSeverity(e)),
                h("td", null, fmtTime(e.ts)),
                h("td", null, h("a", { href: path, onclick: linkHandler(path), class: "machine-link" }, `${e.site} / ${e.line} / ${e.machine}`)),
                h("td", null, h("code", null, e.source)),
                h("td", null, e.type),
                h("td", null, e.state ?? "–"),
                h("td", { class: "why" }, e.message),
                h("td", null, open.has(e) ? ackButton(e) : ""),
              );
            }),
          ),
        ),
      ),
    );
  }

  function ackButton(e: MachineEvent): HTMLElement {
    const button = h("button", { class: "small ack-event", title: "Acknowledge it at the machine (OPC-UA)" }, "Acknowledge") as HTMLButtonElement;
    button.onclick = () => void acknowledgeEvent(e, button);
    return button;
  }

  const live = new LiveStream(() => {}, () => {}, () => void load());
  live.watchAlerts();
  void load();
  return () => {
    alive = false;
    live.close();
    window.clearTimeout(timer);
  };
}
