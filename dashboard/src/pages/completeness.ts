// Completeness: for every machine, one cell per minute — readings stored vs expected — with
// gaps highlighted, and the drops agents reported (data lost before it reached the hub).
import { api, type Completeness, type Machine, type Outage } from "../api";
import { clear, fmtNum, fmtTime, h } from "../dom";
import { linkHandler } from "../router";

const WINDOWS: [string, number][] = [
  ["1 h", 3_600_000],
  ["6 h", 6 * 3_600_000],
  ["24 h", 86_400_000],
];

export function completenessPage(root: HTMLElement): () => void {
  let alive = true;
  let span = WINDOWS[0][1];
  let timer: number | undefined;
  const bar = h("div", { class: "ranges" });
  const body = h("section", { class: "card", id: "completeness" }, h("p", { class: "muted" }, "Loading…"));
  const legend = h(
    "p",
    { class: "legend muted" },
    h("span", { class: "cell c-full" }),
    " complete ",
    h("span", { class: "cell c-part" }),
    " partial ",
    h("span", { class: "cell c-gap" }),
    " gap (nothing stored) ",
    h("span", { class: "cell c-live" }),
    " minute in progress ",
    h("span", { class: "cell c-none" }),
    " nothing expected / not reporting yet",
  );
  root.append(
    h("div", { class: "page-head" }, h("h1", null, "Completeness")),
    h(
      "p",
      { class: "muted" },
      "Readings stored per machine per minute against the expected count: what the machine's schedule asks (tags polled × polls per minute, declared by its agent) or what its agent reported producing, whichever is more; the machine's usual rate where neither is known. A gap says why when the device or its agent was offline. Hover a cell for its numbers.",
    ),
    h("div", { class: "toolbar" }, h("span", null, "Window: "), bar),
    legend,
    body,
  );
  for (const [label, ms] of WINDOWS)
    bar.append(h("button", { class: ms === span ? "small on" : "small", "data-window": label, onclick: () => pick(ms, label) }, label));

  function pick(ms: number, label: string): void {
    span = ms;
    for (const b of bar.querySelectorAll("button")) b.classList.toggle("on", b.dataset.window === label);
    window.clearTimeout(timer);
    void load();
  }

  // Did the machine store anything before `from`? If not, the empty minutes before its first
  // reading are "not reporting yet", not gaps (the hub's expected count cannot tell them apart).
  const existedBefore = new Map<string, boolean>();
  async function before(m: Machine, from: number): Promise<boolean> {
    const key = `${m.site}/${m.line}/${m.machine}/${from}`;
    let known = existedBefore.get(key);
    if (known === undefined) {
      const series = (await api.series(m.machine)).filter((s) => s.site === m.site && s.line === m.line);
      known = false;
      for (const s of series.slice(0, 3)) {
        const h = await api.history(s.id, 0, from, 1);
        if (h.raw.length || h.buckets.length) {
          known = true;
          break;
        }
      }
      existedBefore.set(key, known);
    }
    return known;
  }

  async function load(): Promise<void> {
    try {
      const machines = await api.machines();
      const to = Date.now();
      const from = to - span;
      const results = await Promise.all(
        machines.map(async (m) => {
          const c = await api.completeness(m, from, to).catch(() => null);
          let firstData: number | null = null;
          if (c && c.minutes.length && c.minutes[0].stored === 0) {
            const first = c.minutes.find((x) => x.stored > 0);
            const fromWhole = c.minutes[0].minute;
            if (first && !(await before(m, fromWhole).catch(() => true))) firstData = first.minute;
          }
          return [m, c, firstData] as const;
        }),
      );
      if (!alive) return;
      draw(results);
    } catch (e) {
      if (alive) clear(body, h("p", { class: "error" }, `Could not load completeness: ${e instanceof Error ? e.message : String(e)}`));
    } finally {
      if (alive) timer = window.setTimeout(() => void load(), 30_000);
    }
  }

  function draw(results: (readonly [Machine, Completeness | null, number | null])[]): void {
    if (!results.length) {
      clear(body, h("p", { class: "muted" }, "No machines yet."));
      return;
    }
    const dropped = new Map<string, number>();
    const now = Date.now();
    const rows = results.map(([m, c, firstData]) => {
      const path = `/machines/${m.site}/${m.line}/${m.machine}`;
      const name = h("a", { href: path, onclick: linkHandler(path) }, `${m.site}/${m.line}/${m.machine}`);
      if (!c) return h("tr", null, h("th", null, name), h("td", { colspan: 3, class: "error" }, "not available"));
      Object.entries(c.agents_dropped).forEach(([a, n]) => dropped.set(a, n));
      // Minutes that count: after the machine's first reading, and not the one still running.
      const judged = c.minutes.map((x) => {
        const pending = x.minute + 60_000 > now;
        const notYet = firstData !== null && x.minute < firstData;
        // An outage with nothing expected (report-by-exception tags) is still a gap with a reason.
        const down = x.reason !== null && x.stored === 0;
        const cls = notYet ? "c-none" : pending ? "c-live" : down || (x.expected > 0 && x.stored === 0) ? "c-gap" : x.expected === 0 ? "c-none" : x.ratio < 0.98 ? "c-part" : "c-full";
        const note = (notYet ? " — not reporting yet" : pending ? " — minute in progress" : "") + (x.reason ? ` — ${x.reason}` : "");
        return { x, cls, note, counts: !notYet && !pending && x.expected > 0 };
      });
      const counted = judged.filter((j) => j.counts).map((j) => j.x);
      const stored = counted.reduce((n, x) => n + x.stored, 0);
      const expected = counted.reduce((n, x) => n + x.expected, 0);
      const gaps = counted.filter((x) => x.stored === 0).length;
      const partial = counted.filter((x) => x.stored > 0 && x.ratio < 0.98).length;
      const strip = h("div", { class: "strip", style: `--n:${c.minutes.length}` });
      for (const { x, cls, note } of judged) {
        strip.append(
          h("span", {
            class: `cell ${cls}`,
            title: `${fmtTime(x.minute)} — stored ${x.stored} of ${x.expected} expected (${Math.round(x.ratio * 100)} %)${note}`,
          }),
        );
      }
      return h(
        "tr",
        { "data-machine": `${m.site}/${m.line}/${m.machine}` },
        h("th", null, name),
        h("td", { class: "strip-cell" }, strip),
        h("td", { class: "num" }, expected ? `${((100 * Math.min(stored, expected)) / expected).toFixed(1)} %` : "–", h("div", { class: "muted small" }, `${fmtNum(stored)} / ${fmtNum(expected)}`)),
        h(
          "td",
          { class: `num ${gaps ? "bad-text" : ""}` },
          gaps ? `${gaps} gap min` : partial ? `${partial} partial` : "none",
          ...c.outages.map((o) => h("div", { class: "small outage" }, outageWords(o))),
        ),
      );
    });
    clear(
      body,
      h(
        "div",
        { class: "scroll" },
        h(
          "table",
          { class: "grid completeness" },
          h("thead", null, h("tr", null, h("th", null, "Machine"), h("th", null, `Per minute, ${fmtTime(Date.now() - span)} → now`), h("th", { class: "num" }, "Stored / expected"), h("th", { class: "num" }, "Missing"))),
          h("tbody", null, ...rows),
        ),
      ),
      dropped.size
        ? h("p", null, "Dropped at the edge (agent buffers full or too old): ", [...dropped].map(([a, n]) => `${a}: ${fmtNum(n)}`).join(", "))
        : null,
    );
  }

  void load();
  return () => {
    alive = false;
    window.clearTimeout(timer);
  };
}

// "device offline 03:12–03:19: no answer from …", local times; an ongoing one "since 03:12".
function outageWords(o: Outage): string {
  const hm = (ms: number): string => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const when = o.to_ms === null ? `since ${hm(o.from_ms)}` : `${hm(o.from_ms)}–${hm(o.to_ms)}`;
  if (o.kind === "agent") return `agent offline ${when} (${o.reason})`;
  if (o.kind === "drop") return `${hm(o.from_ms)}–${hm(o.to_ms ?? o.from_ms)}: ${o.reason}`;
  return `device offline ${when}: ${o.reason}`;
}
