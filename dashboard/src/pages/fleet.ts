// Fleet: is every machine online, is data flowing, what is missing — sites → lines → machines,
// and the agents' buffers. Polled every few seconds (machine and agent status change slowly).
// Built for 500 agents × 10 machines: lists are fetched page by page, the machines and agents
// tables draw only the rows in view (vrows.ts), sites and lines fold, and a search box narrows
// the machines to a name.
import { api, type Agent, type Alert, type Machine } from "../api";
import { bySeverity, severityBadge, where } from "./alerts";
import { LiveStream } from "../live";
import { agentState, machineState, type Judged, type State } from "../fleetstate";
import { badge, clear, fmtAge, fmtNum, fmtTime, h } from "../dom";
import { linkHandler } from "../router";
import { VirtualRows } from "../vrows";

const POLL_MS = 3000;
/** Height of every row of the windowed tables (style.css `.vtable tr.vrow td`). */
const ROW_PX = 36;
/** "Needs attention" names this many problems, then counts the rest. */
const MAX_PROBLEMS = 30;
const MACHINE_COLUMNS: [string, string][] = [
  ["Machine", "c-machine"],
  ["State", "c-state"],
  ["Last value", "c-last"],
  ["Tags", "num c-tags hide-narrow"],
  ["Agent", "c-agent hide-narrow"],
  ["Why", "c-why"],
];

interface Item {
  m: Machine;
  j: Judged;
  agent: string;
  /** Lower-case machine, line, agent and site names, for the search box. */
  text: string;
}

type Row =
  | { kind: "site"; site: string; count: number; notOnline: number; open: boolean }
  | { kind: "line"; site: string; line: string; count: number; notOnline: number; open: boolean }
  | { kind: "machine"; x: Item };
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
  const agentsBox = h("section", { class: "card", id: "agents" });
  const alertsBox = h("section", { class: "card", id: "alerts" }, h("h2", null, "Active alerts"));
  const updated = h("span", { class: "muted", id: "updated" });

  // Machines: one windowed table, sites and lines as foldable header rows.
  const collapsed = new Set<string>(); // "site" or "site/line"
  let items: Item[] = [];
  const search = h("input", {
    type: "search",
    id: "fleet-search",
    placeholder: "Search machine, line or agent",
    "aria-label": "Search machines by machine, line or agent name",
    autocomplete: "off",
    oninput: () => {
      machineBox.scrollTop = 0; // a new search starts at its first match
      drawTree();
    },
  });
  const shown = h("span", { class: "muted", id: "fleet-shown" });
  const emptyNote = h("p", { class: "muted", hidden: true });
  const machineBody = h("tbody");
  const machineBox = h(
    "div",
    { class: "scroll vscroll", id: "machines-scroll" },
    h(
      "table",
      { class: "grid machines vtable" },
      h("thead", null, h("tr", null, ...MACHINE_COLUMNS.map(([t, cls]) => h("th", { class: cls }, t)))),
      machineBody,
    ),
  );
  const tree = h("section", { class: "card", id: "machines" }, h("div", { class: "toolbar" }, h("h2", null, "Machines"), search, shown), emptyNote, machineBox);
  const machineRows = new VirtualRows<Row>(machineBox, machineBody, MACHINE_COLUMNS.length, ROW_PX, renderRow);

  // Agents: a windowed table too (500 agents).
  const agentsNote = h("p", { class: "muted" }, "No agent has reported status yet.");
  const agentBody = h("tbody");
  const agentBox = h(
    "div",
    { class: "scroll vscroll agents-scroll", hidden: true },
    h("table", { class: "grid agents vtable" }, h("thead", null, h("tr", null, ...AGENT_COLUMNS.map(([t, cls]) => h("th", cls ? { class: cls } : null, t)))), agentBody),
  );
  agentsBox.append(h("h2", null, "Agents"), agentsNote, agentBox);
  let now = Date.now();
  const agentRows = new VirtualRows<Agent>(agentBox, agentBody, AGENT_COLUMNS.length, ROW_PX, (a) => agentRow(a, now));

  root.append(
    h("div", { class: "page-head" }, h("h1", null, "Fleet"), updated),
    banner,
    summary,
    missing,
    tree,
    h("div", { class: "two" }, agentsBox, alertsBox),
  );
  let alive = true;
  let loaded = false;
  let timer: number | undefined;

  async function tick(): Promise<void> {
    try {
      // The first time, draw the machines as their pages come: a big fleet shows its first
      // thousand at once.
      const early = loaded ? undefined : (rows: Machine[]) => {
        if (!alive) return;
        setItems(rows, new Map());
        updated.textContent = `loading machines… ${fmtNum(rows.length)} so far`;
      };
      const [machines, agents, alerts] = await Promise.all([api.allMachines(early), api.allAgents(), api.alerts({ state: "open", limit: 50 })]);
      if (!alive) return;
      loaded = true;
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

  function setItems(machines: Machine[], agents: Map<string, Agent>): void {
    items = machines.map((m) => {
      const agent = (m.agent !== null ? agents.get(m.agent)?.agent_id : undefined) ?? m.agent ?? "–";
      return { m, j: machineState(m), agent, text: `${m.machine}\n${m.line}\n${agent}\n${m.site}`.toLowerCase() };
    });
    items.sort((a, b) => cmp(a.m.site, b.m.site) || cmp(a.m.line, b.m.line) || cmp(a.m.machine, b.m.machine));
    drawTree();
  }

  function draw(machines: Machine[], agents: Agent[]): void {
    now = Date.now();
    const byId = new Map(agents.map((a) => [a.agent_id, a]));
    setItems(machines, byId);
    const counts = new Map<State, number>();
    for (const x of items) counts.set(x.j.state, (counts.get(x.j.state) ?? 0) + 1);
    const count = (s: State) => counts.get(s) ?? 0;
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

    // What is missing, in words: the first MAX_PROBLEMS, then how many more (a fleet with a
    // site down would otherwise list thousands here).
    const problems: (() => HTMLElement)[] = [];
    for (const { m, j } of items) {
      if (j.state !== "online") problems.push(() => h("li", null, badge(j.state), " ", machineLink(m), ` — ${j.why}`));
    }
    for (const a of agents) {
      const s = agentState(a, now);
      if (s !== "online") problems.push(() => h("li", null, badge(s), ` agent ${a.agent_id} — last heard ${fmtAge(now - a.last_seen_ms)} ago`));
      if ((a.buffer_depth ?? 0) > 0 && (a.buffer_age_ms ?? 0) > 30_000)
        problems.push(() => h("li", null, badge("stale", "backlog"), ` agent ${a.agent_id} holds ${fmtNum(a.buffer_depth)} unsent readings, oldest ${fmtAge(a.buffer_age_ms)}${a.drain_eta_s ? `, drained in ~${fmtAge(a.drain_eta_s * 1000)}` : ""}`));
      if (a.dropped) problems.push(() => h("li", null, badge("faulted", "dropped"), ` agent ${a.agent_id} dropped ${fmtNum(a.dropped)} readings (buffer full or too old)`));
    }
    const more = problems.length - MAX_PROBLEMS;
    clear(
      missing,
      h("h2", null, problems.length ? "Needs attention" : "All data flowing"),
      machines.length === 0
        ? h("p", { class: "muted" }, "No machine has reported yet. Start an agent (edge-agent run) pointed at this hub's broker.")
        : problems.length
          ? h("ul", { class: "problems" }, ...problems.slice(0, MAX_PROBLEMS).map((make) => make()))
          : h("p", { class: "ok-text" }, "Every machine is online and no agent holds a backlog."),
      more > 0 ? h("p", { class: "muted", id: "missing-more" }, `… and ${fmtNum(more)} more: search the machines and agents below.`) : null,
    );

    // Agents.
    agentsNote.hidden = agents.length > 0;
    agentBox.hidden = agents.length === 0;
    agentRows.set(agents);
  }

  // Sites → lines → machines, narrowed by the search box; folded groups leave their rows out
  // (a search shows its matches in folded groups too).
  function drawTree(): void {
    const q = search.value.trim().toLowerCase();
    const rows: Row[] = [];
    let matched = 0;
    let i = 0;
    while (i < items.length) {
      const site = items[i].m.site;
      let j = i;
      while (j < items.length && items[j].m.site === site) j++;
      const siteRows: Row[] = [];
      let siteCount = 0;
      let siteBad = 0;
      for (let k = i; k < j; ) {
        const line = items[k].m.line;
        let e = k;
        while (e < j && items[e].m.line === line) e++;
        const hits = items.slice(k, e).filter((x) => !q || x.text.includes(q));
        k = e;
        if (!hits.length) continue;
        const notOnline = hits.filter((x) => x.j.state !== "online").length;
        const open = q !== "" || !collapsed.has(`${site}/${line}`);
        siteRows.push({ kind: "line", site, line, count: hits.length, notOnline, open });
        if (open) for (const x of hits) siteRows.push({ kind: "machine", x });
        siteCount += hits.length;
        siteBad += notOnline;
      }
      i = j;
      if (!siteCount) continue;
      matched += siteCount;
      const open = q !== "" || !collapsed.has(site);
      rows.push({ kind: "site", site, count: siteCount, notOnline: siteBad, open });
      if (open) rows.push(...siteRows);
    }
    shown.textContent = q ? `${fmtNum(matched)} of ${fmtNum(items.length)} machines match` : `${fmtNum(items.length)} machines`;
    emptyNote.hidden = !(q && matched === 0);
    emptyNote.textContent = `No machine, line or agent name contains “${search.value.trim()}”.`;
    machineRows.set(rows);
  }

  function toggle(key: string): void {
    if (collapsed.has(key)) collapsed.delete(key);
    else collapsed.add(key);
    drawTree();
  }

  function renderRow(r: Row): HTMLTableRowElement {
    if (r.kind === "machine") {
      const { m, j, agent } = r.x;
      const last = m.last_reading_ms ?? m.last_seen_ms;
      return h(
        "tr",
        { "data-machine": `${m.site}/${m.line}/${m.machine}`, class: `vrow row-${j.state}` },
        h("td", { class: "c-machine" }, machineLink(m)),
        h("td", { class: "state" }, badge(j.state)),
        h("td", null, fmtTime(last), h("span", { class: "muted" }, last ? ` (${fmtAge(now - last)} ago)` : "")),
        h("td", { class: "num hide-narrow" }, m.series),
        h("td", { class: "hide-narrow", title: agent }, agent),
        h("td", { class: "why", title: j.why }, j.why),
      );
    }
    const key = r.kind === "site" ? r.site : `${r.site}/${r.line}`;
    const label = r.kind === "site" ? `Site ${r.site}` : `Line ${r.line}`;
    const folded = !r.open;
    return h(
      "tr",
      { class: `vrow group group-${r.kind}`, "data-group": key },
      h(
        "td",
        { colspan: MACHINE_COLUMNS.length },
        h(
          "button",
          { type: "button", class: "group-toggle", "aria-expanded": folded ? "false" : "true", title: folded ? "Show its machines" : "Fold it away", onclick: () => toggle(key) },
          folded ? "▸ " : "▾ ",
          h("span", { class: "group-name" }, label),
        ),
        h("span", { class: "muted" }, ` ${fmtNum(r.count)} machine${r.count === 1 ? "" : "s"}`),
        r.notOnline ? h("span", { class: "bad-text" }, `, ${fmtNum(r.notOnline)} not online`) : "",
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
    machineRows.close();
    agentRows.close();
    window.clearTimeout(timer);
  };
}

function agentRow(a: Agent, now: number): HTMLTableRowElement {
  const s = agentState(a, now);
  const errors = Object.values(a.poll_errors).reduce((x, y) => x + y, 0);
  return h(
    "tr",
    { "data-agent": a.agent_id, class: "vrow" },
    h("td", { title: a.agent_id }, a.agent_id),
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
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function tile(label: string, value: string | number, tone: string, id?: string): HTMLElement {
  return h("div", { class: `tile tone-${tone}`, id }, h("div", { class: "tile-value" }, value), h("div", { class: "tile-label" }, label));
}

function machineLink(m: Machine): HTMLElement {
  const path = `/machines/${m.site}/${m.line}/${m.machine}`;
  return h("a", { href: path, onclick: linkHandler(path), class: "machine-link" }, m.machine);
}
