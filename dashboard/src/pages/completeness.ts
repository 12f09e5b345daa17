// Completeness: for every machine, one cell per minute — readings stored vs expected — with
// gaps highlighted, and the drops agents reported (data lost before it reached the hub).
import { api, type Completeness, type Machine } from "../api";
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
    h("span", { class: "cell c-none" }),
    " nothing expected",
  );
  root.append(
    h("div", { class: "page-head" }, h("h1", null, "Completeness")),
    h(
      "p",
      { class: "muted" },
      "Readings stored per machine per minute against the expected count (the machine's usual rate in this window, estimated by the hub). Hover a cell for its numbers.",
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

  async function load(): Promise<void> {
    try {
      const machines = await api.machines();
      const to = Date.now();
      const from = to - span;
      const results = await Promise.all(
        machines.map(async (m) => [m, await api.completeness(m, from, to).catch(() => null)] as const),
      );
      if (!alive) return;
      draw(results);
    } catch (e) {
      if (alive) clear(body, h("p", { class: "error" }, `Could not load completeness: ${e instanceof Error ? e.message : String(e)}`));
    } finally {
      if (alive) timer = window.setTimeout(() => void load(), 30_000);
    }
  }

  function draw(results: (readonly [Machine, Completeness | null])[]): void {
    if (!results.length) {
      clear(body, h("p", { class: "muted" }, "No machines yet."));
      return;
    }
    const dropped = new Map<string, number>();
    const rows = results.map(([m, c]) => {
      const path = `/machines/${m.site}/${m.line}/${m.machine}`;
      const name = h("a", { href: path, onclick: linkHandler(path) }, `${m.site}/${m.line}/${m.machine}`);
      if (!c) return h("tr", null, h("th", null, name), h("td", { colspan: 3, class: "error" }, "not available"));
      Object.entries(c.agents_dropped).forEach(([a, n]) => dropped.set(a, n));
      const stored = c.minutes.reduce((n, x) => n + x.stored, 0);
      const expected = c.minutes.reduce((n, x) => n + x.expected, 0);
      const gaps = c.minutes.filter((x) => x.expected > 0 && x.stored === 0).length;
      const partial = c.minutes.filter((x) => x.expected > 0 && x.stored > 0 && x.ratio < 0.98).length;
      const strip = h("div", { class: "strip", style: `--n:${c.minutes.length}` });
      for (const x of c.minutes) {
        const cls = x.expected === 0 ? "c-none" : x.stored === 0 ? "c-gap" : x.ratio < 0.98 ? "c-part" : "c-full";
        strip.append(
          h("span", {
            class: `cell ${cls}`,
            title: `${fmtTime(x.minute)} — stored ${x.stored} of ${x.expected} expected (${Math.round(x.ratio * 100)} %)`,
          }),
        );
      }
      return h(
        "tr",
        { "data-machine": `${m.site}/${m.line}/${m.machine}` },
        h("th", null, name),
        h("td", { class: "strip-cell" }, strip),
        h("td", { class: "num" }, expected ? `${((100 * Math.min(stored, expected)) / expected).toFixed(1)} %` : "–", h("div", { class: "muted small" }, `${fmtNum(stored)} / ${fmtNum(expected)}`)),
        h("td", { class: `num ${gaps ? "bad-text" : ""}` }, gaps ? `${gaps} gap min` : partial ? `${partial} partial` : "none"),
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
