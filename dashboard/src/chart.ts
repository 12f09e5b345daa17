// One uPlot chart per tag: a value line, the min–max band of downsampled buckets, and
// bad / uncertain readings drawn as red / amber points. Data live in plain arrays that grow
// at the end; redraws are coalesced to one per animation frame, so ten charts of 10,000 points
// each stay smooth while readings stream in.
import uPlot from "uplot";
import type { History, Quality } from "./api";

export const MAX_POINTS = 10_000;
/** Share of the main thread all live charts together may spend redrawing. */
const DRAW_BUDGET = 0.1;

type Col = (number | null)[];

/** A span an alert was active on this tag (to = null: still open), and how bad. */
/** A threshold rule's limit drawn on a chart: `above` or `below` of a rule matching the tag. */
export interface Threshold {
  rule: string;
  value: number;
  severity: string;
}

export interface AlertSpan {
  from: number;
  to: number | null;
  severity: string;
}

/** A machine event drawn as a vertical line at its time; `title` shows on hover. */
export interface EventMark {
  ts: number;
  /** OPC-UA's 1-1000: the line's colour band. */
  severity: number;
  title: string;
}

/** The colour of an event's severity band: ≥700 red, ≥400 amber, else grey. */
export function eventColour(severity: number): string {
  return severity >= 700 ? "#cf222e" : severity >= 400 ? "#bf8700" : "#8c959f";
}

/** How near (CSS px) the cursor must come to an event line for its title to show. */
const EVENT_HOVER_PX = 5;

export interface ChartHooks {
  onZoom(min: number, max: number): void;
  onReset(): void;
}

export class TagChart {
  readonly el: HTMLElement;
  private xs: number[] = [];
  private ys: Col = [];
  private lo: Col = [];
  private hi: Col = [];
  private unc: Col = [];
  private bad: Col = [];
  /** Points kept as live readings arrive: MAX_POINTS, or all of a larger raw history. */
  private keep = MAX_POINTS;
  private u: uPlot;
  private frame = 0;
  private window: [number, number] | null = null;
  private dragging = false;
  private timer = 0;
  private drawn = 0;
  private cost = 0;
  private static live = new Set<TagChart>();
  private limits: [number | null, number | null] = [null, null];
  private alerts: AlertSpan[] = [];
  private thresholds: Threshold[] = [];
  private events: EventMark[] = [];
  private readonly release = () => {
    this.dragging = false;
    this.schedule();
  };

  constructor(
    parent: HTMLElement,
    readonly tag: string,
    unit: string | null,
    hooks: ChartHooks,
  ) {
    this.el = parent;
    const opts: uPlot.Options = {
      width: Math.max(280, parent.clientWidth || 600),
      height: 190,
      ms: 1,
      pxAlign: 0,
      legend: { show: true, live: true },
      cursor: {
        drag: { x: true, y: false, setScale: false },
        bind: { dblclick: () => null },
      },
      scales: { x: { time: true } },
      axes: [
        { stroke: "#57606a", grid: { stroke: "#eaeef2" }, ticks: { stroke: "#d0d7de" } },
        {
          stroke: "#57606a",
          // Wide enough for the longest tick label (large counters, long decimals).
          size: (_u, values) => 18 + 7 * Math.max(3, ...(values ?? []).map((v) => String(v).length)),
          label: unit ?? undefined,
          grid: { stroke: "#eaeef2" },
          ticks: { stroke: "#d0d7de" },
        },
      ],
      series: [
        {},
        { label: unit ? `${tag} (${unit})` : tag, stroke: "#0969da", width: 1.5, points: { show: false } },
        { label: "min", stroke: "rgba(9,105,218,0.35)", width: 1, points: { show: false } },
        { label: "max", stroke: "rgba(9,105,218,0.35)", width: 1, points: { show: false } },
        { label: "uncertain", stroke: "#bf8700", fill: "#d4a72c", paths: () => null, points: { show: true, size: 7, width: 1, stroke: "#9a6700", fill: "#d4a72c" } },
        { label: "bad", stroke: "#cf222e", fill: "#cf222e", paths: () => null, points: { show: true, size: 8, width: 1, stroke: "#a40e26", fill: "#cf222e" } },
      ],
      bands: [{ series: [3, 2], fill: "rgba(9,105,218,0.12)" }],
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width > 4) {
              const min = u.posToVal(u.select.left, "x");
              const max = u.posToVal(u.select.left + u.select.width, "x");
              hooks.onZoom(min, max);
            }
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          },
        ],
        // Under the data: the tag's alert spans as shaded columns, its profile limits as
        // dashed lines, so a value's excursion reads against where alerts fire.
        drawClear: [(u) => this.paintMarks(u)],
        // Over the data: machine events, so a line is never hidden under the value it explains.
        draw: [(u) => this.paintEvents(u)],
        setCursor: [(u) => this.hoverEvent(u)],
        ready: [
          (u) => {
            u.over.addEventListener("dblclick", () => hooks.onReset());
            // A redraw while the user drags would drop the selection: hold them until mouseup.
            u.over.addEventListener("mousedown", () => (this.dragging = true));
            document.addEventListener("mouseup", this.release);
          },
        ],
      },
    };
    this.u = new uPlot(opts, this.data(), parent);
    TagChart.live.add(this);
  }

  private data(): uPlot.AlignedData {
    return [this.xs, this.ys, this.lo, this.hi, this.unc, this.bad] as unknown as uPlot.AlignedData;
  }

  /** The tag's plausible range (profile limits), the threshold rules that watch it, and the
   * spans its alerts were active. */
  setMarks(low: number | null, high: number | null, alerts: AlertSpan[], thresholds: Threshold[] = []): void {
    this.limits = [low, high];
    this.alerts = alerts;
    this.thresholds = thresholds;
    this.el.dataset.alerts = String(alerts.length);
    this.el.dataset.limits = [low, high].map((v) => (v === null ? "" : String(v))).join(",");
    this.el.dataset.thresholds = thresholds.map((t) => `${t.rule}:${t.value}`).join(",");
    this.u.redraw(false);
  }

  /** The machine's events in the shown window (one fetch per page refresh, shared by all
   * charts). */
  setEvents(events: EventMark[]): void {
    this.events = events;
    this.el.dataset.events = String(events.length);
    this.u.redraw(false);
  }

  private paintEvents(u: uPlot): void {
    if (!this.events.length) return;
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    const xMin = u.scales.x.min ?? -Infinity;
    const xMax = u.scales.x.max ?? Infinity;
    const tip = 5 * devicePixelRatio;
    ctx.save();
    ctx.lineWidth = Math.max(1, devicePixelRatio);
    for (const e of this.events) {
      if (e.ts < xMin || e.ts > xMax) continue;
      const x = Math.round(u.valToPos(e.ts, "x", true));
      if (x < left || x > left + width) continue;
      ctx.strokeStyle = ctx.fillStyle = eventColour(e.severity);
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      // A small flag at the top: a line among many readings is easy to miss.
      ctx.beginPath();
      ctx.moveTo(x - tip, top);
      ctx.lineTo(x + tip, top);
      ctx.lineTo(x, top + tip * 1.5);
      ctx.fill();
    }
    ctx.restore();
  }

  /** The title of the event lines under the cursor, as the plot's tooltip. */
  private hoverEvent(u: uPlot): void {
    const at = u.cursor.left ?? -1;
    let text = "";
    if (at >= 0) {
      text = this.events
        .filter((e) => Math.abs(u.valToPos(e.ts, "x") - at) <= EVENT_HOVER_PX)
        .map((e) => e.title)
        .join("\n");
    }
    if (u.over.title !== text) u.over.title = text;
  }

  private paintMarks(u: uPlot): void {
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    const xMax = u.scales.x.max ?? Date.now();
    for (const a of this.alerts) {
      const x0 = u.valToPos(a.from, "x", true);
      const x1 = u.valToPos(a.to ?? xMax, "x", true);
      ctx.fillStyle = a.severity === "critical" ? "rgba(207,34,46,0.12)" : "rgba(191,135,0,0.12)";
      ctx.fillRect(x0, top, Math.max(2, x1 - x0), height);
    }
    ctx.setLineDash([6, 4]);
    ctx.strokeStyle = "#cf222e";
    ctx.lineWidth = 1;
    for (const v of this.limits) {
      if (v === null) continue;
      const y = u.valToPos(v, "y", true);
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + width, y);
      ctx.stroke();
    }
    // Threshold rules: dotted, in their severity's colour, named at the right edge.
    ctx.setLineDash([2, 3]);
    ctx.font = `${Math.round(11 * devicePixelRatio)}px sans-serif`;
    ctx.textAlign = "right";
    for (const t of this.thresholds) {
      const y = u.valToPos(t.value, "y", true);
      const colour = t.severity === "critical" ? "#cf222e" : t.severity === "warning" ? "#bf8700" : "#57606a";
      ctx.strokeStyle = colour;
      ctx.fillStyle = colour;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + width, y);
      ctx.stroke();
      ctx.fillText(t.rule, left + width - 4, y - 3);
    }
    ctx.restore();
  }

  /** Replace everything with a history answer (raw points, or buckets with min/max). */
  setHistory(hist: History): void {
    const n = hist.raw.length + hist.buckets.length;
    this.keep = Math.max(MAX_POINTS, n);
    this.xs = new Array<number>(n);
    this.ys = new Array<number | null>(n);
    this.lo = new Array<number | null>(n);
    this.hi = new Array<number | null>(n);
    this.unc = new Array<number | null>(n);
    this.bad = new Array<number | null>(n);
    let i = 0;
    for (const p of hist.raw) {
      const y = numeric(p.v);
      this.xs[i] = p.ts;
      this.ys[i] = y;
      this.lo[i] = null;
      this.hi[i] = null;
      this.unc[i] = p.q === "uncertain" ? y : null;
      this.bad[i] = p.q === "bad" ? (y ?? 0) : null;
      i++;
    }
    for (const b of hist.buckets) {
      this.xs[i] = b.ts;
      this.ys[i] = b.avg;
      this.lo[i] = b.min;
      this.hi[i] = b.max;
      this.unc[i] = null;
      this.bad[i] = null;
      i++;
    }
    this.schedule();
  }

  /** Append one live reading (older than what is shown: ignored). */
  push(ts: number, v: unknown, q: Quality): void {
    const n = this.xs.length;
    if (n && ts <= this.xs[n - 1]) return;
    const y = numeric(v);
    this.xs.push(ts);
    this.ys.push(y);
    this.lo.push(null);
    this.hi.push(null);
    this.unc.push(q === "uncertain" ? y : null);
    this.bad.push(q === "bad" ? (y ?? 0) : null);
    if (this.xs.length > this.keep + 500) {
      const cut = this.xs.length - this.keep;
      for (const col of [this.xs, this.ys, this.lo, this.hi, this.unc, this.bad]) col.splice(0, cut);
    }
    this.schedule();
  }

  /** Show [min, max] (a sliding live window or a zoom); null = fit the data. */
  setWindow(w: [number, number] | null): void {
    this.window = w;
    this.schedule();
  }

  /** Smoothed time one redraw takes (ms). */
  get drawCost(): number {
    return this.cost;
  }

  get points(): number {
    return this.xs.length;
  }

  resize(width: number): void {
    this.u.setSize({ width: Math.max(280, width), height: 190 });
  }

  destroy(): void {
    cancelAnimationFrame(this.frame);
    window.clearTimeout(this.timer);
    TagChart.live.delete(this);
    document.removeEventListener("mouseup", this.release);
    this.u.destroy();
  }

  private schedule(): void {
    if (this.frame || this.timer) return;
    // Redraw at most as often as keeps all live charts together under DRAW_BUDGET of the main
    // thread: a chart that costs 5 ms to draw, with 10 on the page, redraws every ~500 ms; a cheap
    // one every frame (canvas paint costs ~2x the measured JS again: hence the low budget).
    // Scrolling, the cursor and the values table (updated per reading) stay responsive.
    const gap = (this.cost * TagChart.live.size) / DRAW_BUDGET;
    const wait = this.drawn + gap - performance.now();
    if (wait > 0) {
      this.timer = window.setTimeout(() => {
        this.timer = 0;
        this.schedule();
      }, wait);
      return;
    }
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      if (this.dragging) return; // `release` schedules again
      const w = this.window;
      const t0 = performance.now();
      this.u.batch(() => {
        this.u.setData(this.data(), w === null);
        if (w) this.u.setScale("x", { min: w[0], max: w[1] });
      });
      this.drawn = performance.now();
      this.cost = 0.7 * this.cost + 0.3 * (this.drawn - t0);
    });
  }
}

export function numeric(v: unknown): number | null {
  if (typeof v === "number") return Number.isFinite(v) ? v : null;
  if (typeof v === "boolean") return v ? 1 : 0;
  return null;
}
