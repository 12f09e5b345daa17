// Tiny DOM helpers: no framework, text always set as text (never as HTML).
type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | ((ev: Event) => void) | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else if (k === "class") el.className = String(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

export function append(el: Element, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

export function clear(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

const pad = (n: number) => String(n).padStart(2, "0");

/** Local wall-clock time; the date too when not today. */
export function fmtTime(ms: number | null | undefined, withMs = false): string {
  if (ms === null || ms === undefined) return "–";
  const d = new Date(ms);
  const t = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const frac = withMs ? "." + String(d.getMilliseconds()).padStart(3, "0") : "";
  const today = new Date();
  if (d.toDateString() === today.toDateString()) return t + frac;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${t}${frac}`;
}

export function fmtAge(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "–";
  const s = Math.max(0, ms / 1000);
  if (s < 1) return "<1 s";
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

export function fmtNum(v: number | null | undefined, digits = 1): string {
  if (v === null || v === undefined) return "–";
  if (Number.isInteger(v) && Math.abs(v) < 1e9) return v.toLocaleString("en");
  return v.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function fmtValue(v: unknown): string {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") {
    const a = Math.abs(v);
    return a !== 0 && (a < 0.01 || a >= 1e7) ? v.toExponential(3) : fmtNum(v, a < 10 ? 3 : 2);
  }
  return String(v);
}

export function badge(state: string, text = state): HTMLElement {
  return h("span", { class: `badge st-${state}`, "data-state": state }, text);
}
