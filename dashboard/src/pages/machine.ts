// One machine: live charts per tag (WebSocket), current values with quality and units, history
// over a chosen range from the API's downsampling, and drag-to-zoom (double-click resets).
import { api, type Alert, type AlertRule, type Latest, type Machine, type MachineEvent, type Me, type Quality, type Series, type Value } from "../api";
import { TagChart, numeric, type EventMark, type Threshold } from "../chart";
import { badge, clear, fmtAge, fmtTime, fmtValue, h } from "../dom";
import { machineState } from "../fleetstate";
import { LiveStream, type LiveReading } from "../live";
import { linkHandler } from "../router";
import { openWrite } from "./write";

const RANGES: [string, number][] = [
  ["15 min", 15 * 60_000],
  ["1 h", 3_600_000],
  ["6 h", 6 * 3_600_000],
  ["24 h", 86_400_000],
  ["7 d", 7 * 86_400_000],
  ["30 d", 30 * 86_400_000],
];

/** Windows up to this long are fetched as raw readings when they fit RAW_CAP: per-minute
 * buckets would hide what a 15-minute view is for (a 200 ms press stroke). */
const RAW_WINDOW_MS = 3_600_000;
/** The API's largest max_points (docs/api.md): an hour of a 5 Hz tag (18,000 readings) fits. */
const RAW_CAP = 20_000;

/** A shell-style glob (`press-*`, `*current*`, `[ab]?`) as the hub's rules match names. */
export function globRe(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 2);
      if (end < 0) re += "\\[";
      else {
        const body = glob.slice(i + 1, end);
        re += "[" + (body.startsWith("!") ? "^" + body.slice(1) : body).replace(/\\/g, "\\\\") + "]";
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** The limits of threshold rules that watch one series. */
export function thresholdsFor(rules: AlertRule[], site: string, line: string, machine: string, tag: string): Threshold[] {
  const out: Threshold[] = [];
  for (const { rule } of rules) {
    if (rule.kind !== "threshold") continue;
    const m = rule.match ?? {};
    const parts: [string | undefined, string][] = [[m.site, site], [m.line, line], [m.machine, machine], [m.tag, tag]];
    if (!parts.every(([g, v]) => globRe(g ?? "*").test(v))) continue;
    const severity = rule.severity ?? "warning";
    if (typeof rule.above === "number") out.push({ rule: rule.name, value: rule.above, severity });
    if (typeof rule.below === "number") out.push({ rule: rule.name, value: rule.below, severity });
  }
  return out;
}

/** A machine event as a chart marker: its line's colour band and what hovering it says. */
export function eventMark(e: MachineEvent): EventMark {
  const state = e.state ? `, ${e.state}` : "";
  const what = e.message || e.type;
  return { ts: e.ts, severity: e.severity, title: `${fmtTime(e.ts, true)} ${e.source}: ${what} (severity ${e.severity}${state})` };
}

interface Current {
  ts: number;
  v: Value;
  q: Quality;
}

export function machinePage(root: HTMLElement, [site, line, name]: string[], me: Me | null = null): () => void {
  const key = `${site}/${line}/${name}`;
  // Writes are for operators and admins (the API refuses viewers too).
  const canWrite = me !== null && (me.role === "operator" || me.role === "admin");
  let alive = true;
  let range = RANGES[0][1];
  let zoom: [number, number] | null = null;
  let series: Series[] = [];
  const current = new Map<string, Current>();
  const charts = new Map<string, TagChart>();
  const rows = new Map<string, HTMLTableRowElement>();
  const timers: number[] = [];

  const stateBox = h("span", { id: "machine-state" });
  const liveBox = h("span", { class: "live-ind", id: "live-state" }, "connecting…");
  const rangeBar = h("div", { class: "ranges", role: "group", "aria-label": "History range" });
  const zoomNote = h("span", { class: "muted", id: "zoom-note" });
  const resetZoom = h("button", { class: "small", hidden: true, onclick: () => setZoom(null) }, "Reset zoom");
  const valuesBody = h("tbody");
  const chartsBox = h("div", { class: "charts", id: "charts" });
  const message = h("p", { class: "muted" }, "Loading…");

  root.append(
    h(
      "div",
      { class: "page-head" },
      h("a", { href: "/", onclick: linkHandler("/"), class: "back" }, "← Fleet"),
      h("h1", null, name, h("span", { class: "muted sub" }, ` ${site} / ${line}`)),
      stateBox,
      liveBox,
    ),
    h(
      "section",
      { class: "card" },
      h("h2", null, "Current values"),
      h(
        "div",
        { class: "scroll" },
        h(
          "table",
          { class: "grid values", id: "values" },
          h("thead", null, h("tr", null, h("th", null, "Tag"), h("th", { class: "num" }, "Value"), h("th", null, "Unit"), h("th", null, "Quality"), h("th", null, "Time"), h("th", null, ""))),
          valuesBody,
        ),
      ),
      message,
    ),
    h("div", { class: "toolbar" }, h("span", null, "History: "), rangeBar, resetZoom, zoomNote),
    chartsBox,
  );

  for (const [label, ms] of RANGES) {
    rangeBar.append(
      h("button", { class: ms === range ? "small on" : "small", "data-range": label, onclick: () => setRange(ms) }, label),
    );
  }

  function setRange(ms: number): void {
    range = ms;
    for (const b of rangeBar.querySelectorAll("button")) b.classList.toggle("on", b.dataset.range === RANGES.find(([, r]) => r === ms)?.[0]);
    setZoom(null);
  }

  function setZoom(w: [number, number] | null): void {
    zoom = w;
    resetZoom.hidden = w === null;
    zoomNote.textContent = w ? `${fmtTime(w[0])} – ${fmtTime(w[1])}` : "";
    void loadHistory();
  }

  function window_(): [number, number] {
    const now = Date.now();
    return zoom ?? [now - range, now];
  }

  async function loadHistory(): Promise<void> {
    const [from, to] = window_();
    const fromI = Math.floor(from);
    const toI = Math.ceil(to) + 1;
    void loadMarks(fromI, toI);
    await Promise.all(
      [...charts].map(async ([tag, chart]) => {
        const s = series.find((x) => x.tag === tag);
        if (!s) {
          chart.setWindow([from, to]); // a tag seen live only so far: no id to ask history for
          return;
        }
        // Longer windows: one point (a bucket with its min and max) per pixel of the chart.
        const width = Math.max(200, Math.min(4000, chart.el.clientWidth || 1000));
        const maxPoints = to - from <= RAW_WINDOW_MS ? RAW_CAP : width;
        try {
          const hist = await api.history(s.id, fromI, toI, maxPoints);
          if (!alive) return;
          chart.setHistory(hist);
          chart.setWindow([from, to]);
        } catch {
          /* keep what is shown; the banner on the fleet page tells about the hub */
        }
      }),
    );
  }

  /** Limits, the spans alerts were active per tag, and the machine's events, over the shown
   * window: one request each per refresh, whatever the number of charts. */
  let rules: AlertRule[] = [];
  let rulesAt = 0;
  let events: EventMark[] = [];
  async function loadMarks(from: number, to: number): Promise<void> {
    let alerts: Alert[] = [];
    const [alertsAnswer, eventsAnswer] = await Promise.allSettled([
      // Alerts that began before the window but ran into it count too: look back a day.
      api.alerts({ site, line, machine: name, from: from - 86_400_000, to, limit: 1000 }),
      api.events({ site, line, machine: name, since_ms: from, until_ms: to, limit: 1000 }),
    ]);
    // Charts without marks rather than none; events that could not be read keep the last ones.
    if (alertsAnswer.status === "fulfilled") alerts = alertsAnswer.value;
    if (eventsAnswer.status === "fulfilled") events = eventsAnswer.value.map(eventMark);
    if (Date.now() - rulesAt > 60_000) {
      // Rules change rarely (config, or an admin through the API): a minute late is fine.
      rulesAt = Date.now();
      rules = await api.alertRules().catch(() => rules);
    }
    if (!alive) return;
    for (const [tag, chart] of charts) {
      const s = series.find((x) => x.tag === tag);
      const spans = alerts
        .filter((a) => a.tag === tag && (a.cleared_ms === null || a.cleared_ms >= from))
        .map((a) => ({ from: a.ts, to: a.cleared_ms, severity: a.severity }));
      chart.setMarks(s?.limit_low ?? null, s?.limit_high ?? null, spans, thresholdsFor(rules, site, line, name, tag));
      chart.setEvents(events);
    }
  }

  function row(tag: string): HTMLTableRowElement {
    let tr = rows.get(tag);
    if (!tr) {
      const s = series.find((x) => x.tag === tag);
      tr = h(
        "tr",
        { "data-tag": tag },
        h("td", s?.description ? { title: s.description } : null, tag),
        h("td", { class: "num value" }),
        h("td", { class: "unit" }, s?.unit ?? "–"),
        h("td", { class: "quality" }),
        h("td", { class: "time" }),
        h("td", { class: "write" }),
      );
      rows.set(tag, tr);
      const sorted = [...rows.keys()].sort();
      valuesBody.replaceChildren(...sorted.map((t) => rows.get(t)!));
    }
    return tr;
  }

  function show(tag: string, c: Current): void {
    const prev = current.get(tag);
    if (prev && prev.ts > c.ts) return;
    current.set(tag, c);
    const tr = row(tag);
    const cells = tr.children;
    const valueCell = cells[1] as HTMLElement;
    valueCell.textContent = fmtValue(c.v);
    valueCell.dataset.value = String(c.v);
    valueCell.classList.toggle("q-bad", c.q === "bad");
    valueCell.classList.toggle("q-uncertain", c.q === "uncertain");
    clear(cells[3], badge(c.q === "good" ? "online" : c.q === "bad" ? "faulted" : "stale", c.q));
    cells[4].textContent = fmtTime(c.ts, true);
    const s = series.find((x) => x.tag === tag);
    if (canWrite && s?.writable && !cells[5].firstChild) {
      cells[5].append(h("button", { class: "small write-tag", onclick: () => openWrite(s, current.get(tag)?.v ?? null) }, "Write…"));
    }
    tr.dataset.ts = String(c.ts);
  }

  function ensureChart(tag: string, v: Value): TagChart | undefined {
    let chart = charts.get(tag);
    if (!chart && numeric(v) !== null) {
      const s = series.find((x) => x.tag === tag);
      const box = h(
        "div",
        { class: "chart card", "data-chart": tag },
        h("div", { class: "chart-title" }, tag, s?.unit ? h("span", { class: "muted" }, ` (${s.unit})`) : null),
      );
      chartsBox.append(box);
      const sorted = [...chartsBox.children].sort((a, b) => ((a as HTMLElement).dataset.chart ?? "").localeCompare((b as HTMLElement).dataset.chart ?? ""));
      chartsBox.replaceChildren(...sorted);
      chart = new TagChart(box, tag, s?.unit ?? null, { onZoom: (a, b) => setZoom([a, b]), onReset: () => setZoom(null) });
      charts.set(tag, chart);
    }
    return chart;
  }

  let seriesStale = false;
  function onReadings(machine: string, readings: LiveReading[]): void {
    if (machine !== key || !alive) return;
    if (!seriesStale && readings.some((r) => !series.some((x) => x.tag === r.tag))) {
      seriesStale = true; // a new tag: learn its series id (history, zoom) once it is stored
      window.setTimeout(() => {
        void api
          .series(name)
          .then((all) => (series = all.filter((s) => s.site === site && s.line === line)))
          .catch(() => {})
          .finally(() => (seriesStale = false));
      }, 1000);
    }
    for (const r of readings) {
      show(r.tag, { ts: r.ts, v: r.v, q: r.q });
      const chart = ensureChart(r.tag, r.v);
      if (chart && zoom === null) chart.push(r.ts, r.v, r.q);
    }
  }

  const live = new LiveStream(onReadings, (s) => {
    liveBox.textContent = s === "live" ? "● live" : s === "connecting" ? "connecting…" : "○ reconnecting";
    liveBox.className = `live-ind live-${s}`;
  });

  async function refreshState(): Promise<void> {
    try {
      const machines = await api.machines();
      const m = machines.find((x: Machine) => x.site === site && x.line === line && x.machine === name);
      if (!alive) return;
      if (!m) clear(stateBox, badge("unknown", "not reported"));
      else {
        const j = machineState(m);
        const last = m.last_reading_ms ?? m.last_seen_ms;
        clear(stateBox, badge(j.state), h("span", { class: "muted" }, ` ${j.why}; last value ${last ? fmtAge(Date.now() - last) + " ago" : "never"}`));
      }
    } catch {
      /* shown as stale data; the next poll tries again */
    }
  }

  async function start(): Promise<void> {
    try {
      const [all, machines] = await Promise.all([api.series(name), api.machines()]);
      series = all.filter((s) => s.site === site && s.line === line);
      const m = machines.find((x) => x.site === site && x.line === line && x.machine === name);
      if (!alive) return;
      live.subscribe([key]);
      if (m) {
        const latest: Latest[] = await api.latest(m);
        if (!alive) return;
        for (const l of latest) {
          show(l.tag, { ts: l.ts, v: l.v, q: l.q });
          ensureChart(l.tag, l.v);
        }
      }
      message.textContent = series.length ? "" : "No data stored for this machine yet; live values appear as they arrive.";
      message.hidden = series.length > 0;
      await loadHistory();
    } catch (e) {
      message.textContent = `Could not load this machine: ${e instanceof Error ? e.message : String(e)}`;
    }
  }

  // Slide the live window; keep the charts as wide as their cards.
  timers.push(
    window.setInterval(() => {
      if (zoom !== null) return;
      const w = window_();
      for (const c of charts.values()) c.setWindow(w);
    }, 1000),
    window.setInterval(() => void refreshState(), 5000),
    // Alerts that fire or clear while the page is open show within seconds.
    window.setInterval(() => {
      const [from, to] = window_();
      void loadMarks(Math.floor(from), Math.ceil(to) + 1);
    }, 5000),
  );
  const ro = new ResizeObserver(() => {
    for (const c of charts.values()) c.resize(c.el.clientWidth);
  });
  ro.observe(chartsBox);

  void refreshState();
  void start();
  return () => {
    alive = false;
    live.close();
    ro.disconnect();
    timers.forEach((t) => window.clearInterval(t));
    charts.forEach((c) => c.destroy());
  };
}
