// Fleet: is every machine online, is data flowing, what is missing — sites → lines → machines,
// and the agents' buffers. Polled every few seconds (machine and agent status change slowly).
import { api, type Agent, type Alert, type Machine } from "../api";
import { bySeverity, severityBadge, where } from "./alerts";
import { LiveStream } from "../live";
import { agentOf, agentState, machineState, type State } from "../fleetstate";
import { badge, clear, fmtAge, fmtNum, fmtTime, h } from "../dom";
import { linkHandler } from "../router";

const POLL_MS = 3000;
// Agents table columns. On a narrow screen (a tablet, ≤ 820 px) the ones marked hide-narrow go:
// the backlog's age and drain time are spelled out under "Needs attention" when they matter.
const AGENT_COLUMNS: [string, string?][] = [
  ["Agent"],
  ["Connection"],
  ["Last heard"],
  ["Buffered", "num"],
  ["Oldest unsent", "num hide-narrow"],
  ["Rate /s", "num"],
  ["Drain ETA", "num hide-narrow"],
  ["Dropped", "num"],
  ["Poll errors", "num"],
  ["Version", "hide-narrow"],
  ["Config", "hide-narrow"],
];

// The configuration an agent runs: the newest version it kept from the hub, or its own file;
// a newer push that is on trial, was rolled back or refused is named beside it.
function configCell(a: Agent): HTMLElement {
  const kept = a.config_version === null || a.config_version === undefined ? "own file" : `v${a.config_version}`;
  const latest = a.config_latest ?? null;
  if (latest === null || latest === a.config_version) return h("td", { class: "config hide-narrow" }, kept);
  const word: Record<string, string> = { pending: "on trial", failed: "rolled back", refused: "refused", expired: "expired" };
  const status = a.config_latest_status ?? "pending";
  return h(
    "td",
    { class: "config hide-narrow", title: `newest pushed: version ${latest} (${word[status] ?? status})` },
    `${kept} `,
    h("span", { class: status === "pending" ? "muted" : "bad-text" }, `(v${latest} ${word[status] ?? status})`),
  );
}

export function fleetPage(root: HTMLElement): () => void {
  const banner = h("div", { class: "banner", hidden: true, role: "status" });
  const summary = h("section", { class: "summary", id: "summary" });
  const missing = h("section", { class: "card", id: "missing" });
  const tree = h("section", { id: "machines" });
  const agentsBox = h("section", { class: "card", id: "agents" });
  const alertsBox = h("section", { class: "card", id: "alerts" }, h("h2", null, "Active alerts"));
  const updated = h("span", { class: "muted", id: "updated" });
  root.append(
    h("div", { class: "page-head" }, h("h1", null, "Fleet"), updated),
    banner,
    summary,
    missing,
    tree,
    h("div", { class: "two" }, agentsBox, alertsBox),
  );
  let alive = true;
  let timer: number | undefined;

  async function tick(): Promise<void> {
    try {
      const [machines, agents, alerts] = await Promise.all([api.machines(), api.agents(), api.alerts({ state: "open", limit: 50 })]);
      if (!alive) return;
      banner.hidden = true;
      draw(machines, agents);
      drawAlerts(alerts);
      updated.textContent = `updated ${fmtTime(Date.now())}`;
    } catch (e) {
      if (!alive) return;
      banner.hidden = false;
      banner.textContent = `Cannot reach the hub (${String(e instanceof Error ? e.message : e)}); showing the last known state.`;
    } finally {
      if (alive) timer = window.setTimeout(() => void tick(), POLL_MS);
    }
  }

  function drawAlerts(alerts: Alert[]): void {
    const open = bySeverity(alerts);
    clear(
      alertsBox,
      h("h2", null, "Active alerts", open.length ? ` (${open.length})` : ""),
      open.length
        ? h(
            "ul",
            { class: "problems", id: "alerts-list" },
            ...open.slice(0, 10).map((a) => h("li", { "data-id": a.id }, severityBadge(a), " ", where(a), ` — ${a.rule}: ${a.detail}`, a.state === "acknowledged" ? h("span", { class: "muted" }, ` (acknowledged by ${a.acked_by ?? "?"})`) : "")),
          )
        : h("p", { class: "ok-text", id: "alerts-none" }, "No active alerts."),
      h("a", { href: "/alerts", onclick: linkHandler("/alerts") }, "All alerts →"),
    );
  }

  function draw(machines: Machine[], agents: Agent[]): void {
    const now = Date.now();
    const judged = machines.map((m) => ({ m, j: machineState(m), agent: agentOf(m, agents) }));
    const count = (s: State) => judged.filter((x) => x.j.state === s).length;
    const agentStates = agents.map((a) => agentState(a, now));
    const buffered = agents.reduce((n, a) => n + (a.buffer_depth ?? 0), 0);
    const dropped = agents.reduce((n, a) => n + (a.dropped ?? 0), 0);
    const allOnline = machines.length > 0 && count("online") === machines.length;
    clear(
      summary,
      tile("Machines online", `${count("online")} / ${machines.length}`, allOnline ? "online" : machines.length ? "stale" : "unknown", "machines-online"),
      tile("Stale", count("stale"), count("stale") ? "stale" : "ok"),
      tile("Offline", count("offline"), count("offline") ? "offline" : "ok"),
      tile("Faulted", count("faulted"), count("faulted") ? "faulted" : "ok"),
      tile("Agents online", `${agentStates.filter((s) => s === "online").length} / ${agents.length}`, agentStates.every((s) => s === "online") ? "ok" : "stale"),
      tile("Buffered at the edge", fmtNum(buffered), buffered > 10_000 ? "stale" : "ok"),
      tile("Dropped at the edge", fmtNum(dropped), dropped ? "faulted" : "ok"),
    );

    // What is missing, in words.
    const problems: HTMLElement[] = [];
    for (const { m, j } of judged) {
      if (j.state !== "online") problems.push(h("li", null, badge(j.state), " ", machineLink(m), ` — ${j.why}`));
    }
    for (const a of agents) {
      const s = agentState(a, now);
      if (s !== "online") problems.push(h("li", null, badge(s), ` agent ${a.agent_id} — last heard ${fmtAge(now - a.last_seen_ms)} ago`));
      if ((a.buffer_depth ?? 0) > 0 && (a.buffer_age_ms ?? 0) > 30_000)
        problems.push(h("li", null, badge("stale", "backlog"), ` agent ${a.agent_id} holds ${fmtNum(a.buffer_depth)} unsent readings, oldest ${fmtAge(a.buffer_age_ms)}${a.drain_eta_s ? `, drained in ~${fmtAge(a.drain_eta_s * 1000)}` : ""}`));
      if (a.dropped) problems.push(h("li", null, badge("faulted", "dropped"), ` agent ${a.agent_id} dropped ${fmtNum(a.dropped)} readings (buffer full or too old)`));
    }
    clear(
      missing,
      h("h2", null, problems.length ? "Needs attention" : "All data flowing"),
      machines.length === 0
        ? h("p", { class: "muted" }, "No machine has reported yet. Start an agent (edge-agent run) pointed at this hub's broker.")
        : problems.length
          ? h("ul", { class: "problems" }, ...problems)
          : h("p", { class: "ok-text" }, "Every machine is online and no agent holds a backlog."),
    );

    // Sites → lines → machines.
    const sites = new Map<string, Map<string, typeof judged>>();
    for (const x of judged) {
      const lines = sites.get(x.m.site) ?? new Map<string, typeof judged>();
      sites.set(x.m.site, lines);
      lines.set(x.m.line, [...(lines.get(x.m.line) ?? []), x]);
    }
    clear(tree);
    for (const [site, lines] of [...sites].sort()) {
      const siteBox = h("section", { class: "site card", "data-site": site }, h("h2", null, `Site ${site}`));
      for (const [line, items] of [...lines].sort()) {
        const rows = items.map(({ m, j, agent }) => {
          const last = m.last_reading_ms ?? m.last_seen_ms;
          return h(
            "tr",
            { "data-machine": `${m.site}/${m.line}/${m.machine}`, class: `row-${j.state}` },
            h("td", null, machineLink(m)),
            h("td", { class: "state" }, badge(j.state)),
            h("td", null, fmtTime(last), h("span", { class: "muted" }, last ? ` (${fmtAge(now - last)} ago)` : "")),
            h("td", { class: "num hide-narrow" }, m.series),
            h("td", { class: "hide-narrow" }, agent?.agent_id ?? m.agent ?? "–"),
            h("td", { class: "why" }, j.why),
          );
        });
        siteBox.append(
          h("h3", null, `Line ${line}`),
          h(
            "table",
            { class: "grid machines" },
            h("thead", null, h("tr", null, h("th", null, "Machine"), h("th", null, "State"), h("th", null, "Last value"), h("th", { class: "num hide-narrow" }, "Tags"), h("th", { class: "hide-narrow" }, "Agent"), h("th", null, "Why"))),
            h("tbody", null, ...rows),
          ),
        );
      }
      tree.append(siteBox);
    }

    // Agents.
    clear(
      agentsBox,
      h("h2", null, "Agents"),
      agents.length === 0
        ? h("p", { class: "muted" }, "No agent has reported status yet.")
        : h(
            "div",
            { class: "scroll" },
            h(
              "table",
              { class: "grid agents" },
              h("thead", null, h("tr", null, ...AGENT_COLUMNS.map(([t, cls]) => h("th", cls ? { class: cls } : null, t)))),
              h(
                "tbody",
                null,
                ...agents.map((a) => {
                  const s = agentState(a, now);
                  const errors = Object.values(a.poll_errors).reduce((x, y) => x + y, 0);
                  return h(
                    "tr",
                    { "data-agent": a.agent_id },
                    h("td", null, a.agent_id),
                    h("td", { class: "state" }, badge(s)),
                    h("td", null, `${fmtAge(now - a.last_seen_ms)} ago`),
                    h("td", { class: "num" }, fmtNum(a.buffer_depth)),
                    h("td", { class: "num hide-narrow" }, a.buffer_depth ? fmtAge(a.buffer_age_ms) : "–"),
                    h("td", { class: "num" }, fmtNum(a.publish_rate)),
                    h("td", { class: "num hide-narrow" }, a.drain_eta_s !== null ? fmtAge(a.drain_eta_s * 1000) : a.buffer_depth ? "?" : "–"),
                    h("td", { class: `num ${a.dropped ? "bad-text" : ""}` }, fmtNum(a.dropped)),
                    h("td", { class: "num", title: Object.entries(a.poll_errors).map(([k, v]) => `${k}: ${v}`).join("\n") }, fmtNum(errors)),
                    h("td", { class: "hide-narrow" }, a.version ?? "–"),
                    configCell(a),
                  );
                }),
              ),
            ),
          ),
    );

  }

  // An alert change refreshes the alerts card at once instead of at the next poll.
  const live = new LiveStream(() => {}, () => {}, () => {
    void api.alerts({ state: "open", limit: 50 }).then((a) => {
      if (alive) drawAlerts(a);
    }, () => {});
  });
  live.watchAlerts();
  void tick();
  return () => {
    alive = false;
    live.close();
    window.clearTimeout(timer);
  };
}

function tile(label: string, value: string | number, tone: string, id?: string): HTMLElement {
  return h("div", { class: `tile tone-${tone}`, id }, h("div", { class: "tile-value" }, value), h("div", { class: "tile-label" }, label));
}

function machineLink(m: Machine): HTMLElement {
  const path = `/machines/${m.site}/${m.line}/${m.machine}`;
  return h("a", { href: path, onclick: linkHandler(path), class: "machine-link" }, m.machine);
}
