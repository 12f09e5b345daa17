// /bench/charts?charts=10&points=10000&rate=10&seconds=10 — the chart load the issue asks to stay
// smooth: N live charts of P points each, every chart receiving `rate` readings per second and
// sliding its window, as on a machine page. Needs no login and no hub data (synthetic values).
// Frame intervals and long tasks end up in `window.__chartBench` (bench/dashboard_charts.py).
import type { History, Quality } from "../api";
import { TagChart } from "../chart";
import { h } from "../dom";

declare global {
  interface Window {
    __chartBench?: Record<string, number>;
  }
}

export function chartBenchPage(root: HTMLElement): void {
  const q = new URLSearchParams(location.search);
  const n = Number(q.get("charts") ?? 10);
  const points = Number(q.get("points") ?? 10_000);
  const rate = Number(q.get("rate") ?? 10);
  const seconds = Number(q.get("seconds") ?? 10);
  const status = h("p", { id: "bench-status" }, "running…");
  const box = h("div", { class: "charts" });
  root.append(h("main", null, h("h1", null, `${n} charts × ${points.toLocaleString("en")} points, ${rate} readings/s each`), status, box));
  const step = 1000 / rate;
  let t = Date.now();
  const charts: TagChart[] = [];
  for (let i = 0; i < n; i++) {
    const el = h("div", { class: "chart card" });
    box.append(el);
    const chart = new TagChart(el, `tag_${i}`, null, { onZoom() {}, onReset() {} });
    const raw = Array.from({ length: points }, (_, k) => ({
      ts: t - (points - k) * step,
      v: 50 * Math.sin(k / 80 + i) + 5 * Math.random(),
      q: (k % 997 === 0 ? "bad" : k % 499 === 0 ? "uncertain" : "good") as Quality,
    }));
    chart.setHistory({ raw, buckets: [] } as unknown as History);
    charts.push(chart);
  }
  const frames: number[] = [];
  let longTasks = 0;
  let longMs = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      longTasks++;
      longMs += e.duration;
    }
  });
  try {
    obs.observe({ type: "longtask", buffered: false });
  } catch {
    /* not supported: reported as 0 */
  }
  let k = 0;
  const feed = window.setInterval(() => {
    t += step;
    k++;
    for (const [i, c] of charts.entries()) {
      c.push(t, 50 * Math.sin((points + k) / 80 + i) + 5 * Math.random(), k % 97 === 0 ? "bad" : "good");
      c.setWindow([t - points * step, t]);
    }
  }, step);
  const start = performance.now();
  let last = start;
  const tick = (now: number) => {
    frames.push(now - last);
    last = now;
    if (now - start < seconds * 1000) requestAnimationFrame(tick);
    else finish();
  };
  requestAnimationFrame(tick);

  function finish(): void {
    window.clearInterval(feed);
    obs.disconnect();
    const sorted = frames.slice(1).sort((a, b) => a - b);
    const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
    const result = {
      charts: n,
      points_per_chart: charts[0]?.points ?? 0,
      readings_per_s_per_chart: rate,
      seconds,
      frames: sorted.length,
      fps: Math.round((sorted.length / seconds) * 10) / 10,
      frame_p50_ms: pct(50),
      frame_p95_ms: pct(95),
      frame_p99_ms: pct(99),
      frame_max_ms: sorted[sorted.length - 1],
      long_tasks: longTasks,
      long_task_ms: Math.round(longMs),
      draw_ms_per_chart: Math.round((charts.reduce((x, c) => x + c.drawCost, 0) / Math.max(1, n)) * 10) / 10,
    };
    window.__chartBench = result;
    status.textContent = JSON.stringify(result);
  }
}
