// WebSocket /ws client (docs/api.md): authenticates with its first message (never ?token=: a URL
// ends up in proxy and server logs), subscribes to machines, and reconnects with backoff
// (refreshing the access token when the server says 4401).
import { accessToken, refresh, type Quality, type Value } from "./api";

export interface LiveReading {
  tag: string;
  ts: number;
  v: Value;
  q: Quality;
}

type Listener = (machine: string, readings: LiveReading[]) => void;
/** An alert changed (docs/alerts.md "Live"): its id and new state, among other fields. */
export type AlertListener = (change: { id: string; state: string; site: string; machine: string }) => void;
type StatusListener = (state: "connecting" | "live" | "down") => void;

export class LiveStream {
  private ws: WebSocket | null = null;
  private machines = new Set<string>();
  private alerts = false;
  private backoff = 500;
  private refused = 0; // 4401 closes since the last welcome
  private closed = false;
  private timer: number | undefined;

  constructor(
    private readonly onReadings: Listener,
    private readonly onStatus: StatusListener = () => {},
    private readonly onAlert: AlertListener = () => {},
  ) {}

  /** Also receive every alert change (pushed the moment the hub records it). */
  watchAlerts(): void {
    this.alerts = true;
    if (!this.ws) this.connect();
    else this.send({ type: "subscribe", alerts: true });
  }

  subscribe(machines: string[]): void {
    machines.forEach((m) => this.machines.add(m));
    if (!this.ws) this.connect();
    else this.send({ type: "subscribe", machines });
  }

  close(): void {
    this.closed = true;
    window.clearTimeout(this.timer);
    this.ws?.close();
    this.ws = null;
  }

  private send(doc: unknown): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(doc));
  }

  private connect(): void {
    const token = accessToken();
    if (!token || this.closed) return;
    this.onStatus("connecting");
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/ws`);
    this.ws = ws;
    ws.onopen = () => {
      // The token read now, not at connect: a refresh may have replaced it meanwhile.
      this.send({ type: "auth", token: accessToken() ?? token });
      this.send({ type: "subscribe", machines: [...this.machines], alerts: this.alerts });
    };
    ws.onmessage = (ev: MessageEvent<string>) => {
      let doc: { type?: string; machine?: string; readings?: LiveReading[]; id?: string; state?: string; site?: string };
      try {
        doc = JSON.parse(ev.data) as typeof doc;
      } catch {
        return;
      }
      if (doc.type === "welcome") {
        // Authenticated: the connection works.
        this.backoff = 500;
        this.refused = 0;
      } else if (doc.type === "subscribed") this.onStatus("live");
      else if (doc.type === "readings" && doc.machine && doc.readings) this.onReadings(doc.machine, doc.readings);
      else if (doc.type === "alert" && doc.id && doc.state) this.onAlert({ id: doc.id, state: doc.state, site: doc.site ?? "", machine: doc.machine ?? "" });
    };
    ws.onclose = (ev: CloseEvent) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closed) return;
      this.onStatus("down");
      const again = () => this.connect();
      const delay = this.backoff;
      this.backoff = Math.min(this.backoff * 2, 10_000);
      if (ev.code !== 4401) {
        this.timer = window.setTimeout(again, delay);
        return;
      }
      // The token was refused (expired): refresh it and retry, at once the first time; a token
      // the hub keeps refusing backs off like any failure instead of looping through refreshes.
      const wait = this.refused++ === 0 ? 0 : delay;
      void refresh().then((ok) => {
        if (ok) this.timer = window.setTimeout(again, wait);
      });
    };
  }
}
