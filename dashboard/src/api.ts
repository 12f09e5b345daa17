// REST client for the hub's /api/v1 (docs/api.md): bearer tokens from /auth/login, one silent
// refresh on 401 (refresh tokens rotate: the old one stops working once used).

export interface Machine {
  site: string;
  line: string;
  machine: string;
  /** Judged by the hub: online / offline / stale / faulted / unknown, and why in `reason`. */
  state: string;
  reason: string;
  /** What the machine's own status topic says, and its detail. */
  status: string | null;
  detail: string | null;
  /** The agent that polls it, and that agent's last reported state. */
  agent: string | null;
  agent_state: string | null;
  series: number;
  last_seen_ms: number | null;
  last_reading_ms: number | null;
}

export interface Agent {
  agent_id: string;
  state: string;
  status_ts: number | null;
  last_seen_ms: number;
  version: string | null;
  buffer_depth: number | null;
  buffer_age_ms: number | null;
  dropped: number | null;
  publish_rate: number | null;
  drain_eta_s: number | null;
  poll_errors: Record<string, number>;
  config_version?: number | null;
  config_latest?: number | null;
  config_latest_status?: string | null;
}

export interface Series {
  id: number;
  site: string;
  line: string;
  machine: string;
  tag: string;
  /** From the machine's meta message (units in device profiles); null when none was published. */
  unit?: string | null;
  description?: string | null;
  /** The device profile's plausible range (alerts fire past it); null when it gives none. */
  limit_low?: number | null;
  limit_high?: number | null;
  /** Operators may write it (its profile says writable), numbers within write_min..write_max. */
  writable?: boolean;
  write_min?: number | null;
  write_max?: number | null;
}

/** An alert rule as the hub lists it (docs/alerts.md "API"); only the fields the charts use. */
export interface AlertRule {
  rule: {
    name: string;
    kind: string;
    severity?: Severity;
    match?: { site?: string; line?: string; machine?: string; tag?: string };
    above?: number;
    below?: number;
  };
  source: "config" | "api";
}

export type CommandStatus = "pending" | "done" | "refused" | "failed" | "expired";

/** A command (write, call, acknowledge, config) sent to an agent and what it answered (docs/commands.md). */
export interface Command {
  id: string;
  kind: string;
  agent_id: string;
  site: string;
  line: string;
  machine: string;
  tag: string;
  value: Value;
  issued_by: string;
  issued_at: number;
  expires_at: number;
  status: CommandStatus;
  detail: string | null;
  previous: Value;
  read_back: Value;
  finished_at: number | null;
  answered_at: number | null;
}

export type Value = number | boolean | string | null;
export type Quality = "good" | "uncertain" | "bad";

export interface Latest {
  series_id: number;
  tag: string;
  ts: number;
  v: Value;
  q: Quality;
}

export interface RawPoint {
  ts: number;
  v: Value;
  q: Quality;
}

export interface Bucket {
  ts: number;
  min: number;
  max: number;
  avg: number;
  count: number;
  last: number;
}

export interface History {
  series: Series;
  from_ms: number;
  to_ms: number;
  resolution: "raw" | "minute" | "hour";
  bucket_ms: number | null;
  truncated: boolean;
  raw: RawPoint[];
  buckets: Bucket[];
}

export interface Minute {
  minute: number;
  stored: number;
  expected: number;
  ratio: number;
  reason: string | null;
}

export interface Outage {
  kind: "device" | "agent" | "drop";
  reason: string;
  from_ms: number;
  to_ms: number | null;
}

export interface Completeness {
  machine: string;
  from_ms: number;
  to_ms: number;
  expected_per_minute: number;
  scheduled_per_minute: number | null;
  minutes: Minute[];
  outages: Outage[];
  agents_dropped: Record<string, number>;
}

export interface DeadLetter {
  id: number;
  received_at: number;
  topic: string;
  payload_size: number;
  payload_preview: string;
  reason: string;
  message: string;
  src: string | null;
}

export type Severity = "info" | "warning" | "critical";
export type AlertState = "active" | "acknowledged" | "cleared";

/** An alert occurrence (docs/alerts.md "API"). */
export interface Alert {
  id: string;
  rule: string;
  kind: string;
  severity: Severity;
  state: AlertState;
  site: string;
  line: string;
  machine: string;
  tag: string;
  value: number | null;
  /** When it became active. */
  ts: number;
  detail: string;
  found_late: boolean;
  acked_ms: number | null;
  acked_by: string | null;
  ack_comment: string | null;
  cleared_ms: number | null;
  cleared_value: number | null;
}

/** A machine's own event: an alarm raised, acknowledged or cleared at the machine (docs/events.md). */
export interface MachineEvent {
  site: string;
  line: string;
  machine: string;
  id: string;
  ts: number;
  source: string;
  type: string;
  /** OPC-UA's 1-1000. */
  severity: number;
  message: string;
  state: string | null;
  fields: Record<string, unknown>;
  src: string;
  received_at: number;
}

/** A broker identity the hub made (docs/deploy.md "Broker identities with dynamic security"). */
export interface Identity {
  name: string;
  kind: "device" | "agent";
  site: string;
  line: string;
  /** A device's machines; an agent publishes for any machine of its line (empty list). */
  machines: string[];
  src: string;
  disabled: boolean;
  created_at: number;
  created_by: string;
}

export interface IdentityIn {
  name: string;
  kind: "device" | "agent";
  site: string;
  line: string;
  machines: string[];
  src?: string;
}

/** A new identity's or a rotated password: in this answer only, never again. */
export interface IdentityPassword {
  name: string;
  password: string;
}

export interface Me {
  subject: string;
  role: string;
  kind: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const BASE = "/api/v1";
const STORE = "millstream.tokens";

interface Tokens {
  access_token: string;
  refresh_token: string;
}

let tokens: Tokens | null = load();
let refreshing: Promise<boolean> | null = null;
let onLoggedOut: () => void = () => {};

function load(): Tokens | null {
  try {
    const raw = sessionStorage.getItem(STORE);
    return raw ? (JSON.parse(raw) as Tokens) : null;
  } catch {
    return null;
  }
}

function save(t: Tokens | null): void {
  tokens = t;
  if (t) sessionStorage.setItem(STORE, JSON.stringify(t));
  else sessionStorage.removeItem(STORE);
}

export function whenLoggedOut(fn: () => void): void {
  onLoggedOut = fn;
}

export function loggedIn(): boolean {
  return tokens !== null;
}

export function accessToken(): string | null {
  return tokens?.access_token ?? null;
}

function detail(body: unknown, fallback: string): string {
  if (body && typeof body === "object" && "detail" in body) {
    const d = (body as { detail: unknown }).detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((e) => (e as { msg?: string }).msg ?? "").join("; ");
  }
  return fallback;
}

async function post<T>(path: string, body: unknown): Promise<T> {
  const r = await fetch(BASE + path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const doc: unknown = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, detail(doc, r.statusText));
  return doc as T;
}

export async function login(username: string, password: string): Promise<void> {
  try {
    save(await post<Tokens>("/auth/login", { username, password }));
  } catch (e) {
    if (e instanceof ApiError) {
      if (e.status === 401 || e.status === 422) throw new ApiError(e.status, "Wrong user name or password.");
      if (e.status === 429) throw new ApiError(429, "Too many attempts; wait a minute and try again.");
    }
    throw e;
  }
}

export function logout(): void {
  save(null);
  onLoggedOut();
}

/** Exchange the refresh token for a new pair (once at a time); false when the session is over. */
export function refresh(): Promise<boolean> {
  if (!tokens) return Promise.resolve(false);
  if (!refreshing) {
    const spent = tokens.refresh_token;
    refreshing = post<Tokens>("/auth/refresh", { refresh_token: spent })
      .then((t) => {
        save(t);
        return true;
      })
      .catch((e: unknown) => {
        if (e instanceof ApiError && (e.status === 401 || e.status === 422)) save(null);
        return false;
      })
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

export function get<T>(path: string, params?: Record<string, string | number>): Promise<T> {
  return call<T>("GET", path, params);
}

/** An authenticated request (one silent refresh on 401); `body` is sent as JSON. */
async function call<T>(method: string, path: string, params?: Record<string, string | number>, body?: unknown): Promise<T> {
  return (await request<T>(method, path, params, body)).doc;
}

/**
 * Every row of a paged list (docs/api.md "Paging"), `size` at a time, following X-Next-Cursor;
 * `onPage` sees the rows so far after each page (a big fleet draws before its last page).
 */
export async function getAll<T>(path: string, size: number, onPage?: (rows: T[]) => void): Promise<T[]> {
  const rows: T[] = [];
  let after: string | null = null;
  do {
    const params: Record<string, string | number> = after === null ? { limit: size } : { limit: size, after };
    const page: { doc: T[]; headers: Headers } = await request<T[]>("GET", path, params);
    rows.push(...page.doc);
    after = page.headers.get("X-Next-Cursor");
    if (after !== null) onPage?.(rows);
  } while (after !== null);
  return rows;
}

async function request<T>(method: string, path: string, params?: Record<string, string | number>, body?: unknown): Promise<{ doc: T; headers: Headers }> {
  const qs = params ? "?" + new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)])) : "";
  for (let attempt = 0; ; attempt++) {
    const token = tokens?.access_token;
    if (!token) {
      onLoggedOut();
      throw new ApiError(401, "not logged in");
    }
    const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(BASE + path + qs, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (r.status === 401 && attempt === 0 && (await refresh())) continue;
    const doc: unknown = await r.json().catch(() => null);
    if (r.status === 401) {
      save(null);
      onLoggedOut();
    }
    if (!r.ok) throw new ApiError(r.status, detail(doc, r.statusText));
    return { doc: doc as T, headers: r.headers };
  }
}

export const api = {
  me: () => get<Me>("/auth/me"),
  machines: () => get<Machine[]>("/machines"),
  agents: () => get<Agent[]>("/agents"),
  /** The same lists fetched page by page (the fleet view at hundreds of agents). */
  allMachines: (onPage?: (rows: Machine[]) => void) => getAll<Machine>("/machines", 1000, onPage),
  allAgents: () => getAll<Agent>("/agents", 1000),
  series: (machine: string) => get<Series[]>("/series", { machine }),
  latest: (m: Machine) => get<Latest[]>(`/machines/${m.site}/${m.line}/${m.machine}/latest`),
  history: (id: number, from: number, to: number, maxPoints: number) =>
    get<History>(`/series/${id}/readings`, { from, to, max_points: maxPoints }),
  completeness: (m: Machine, from: number, to: number) =>
    get<Completeness>(`/machines/${m.site}/${m.line}/${m.machine}/completeness`, { from, to }),
  deadLetters: (limit: number) => get<DeadLetter[]>("/dead-letters", { limit }),
  alerts: (params: Record<string, string | number>) => get<Alert[]>("/alerts", params),
  events: (params: Record<string, string | number>) => get<MachineEvent[]>("/events", params),
  ackAlert: (id: string, comment: string) => call<Alert>("POST", `/alerts/${id}/ack`, undefined, { comment }),
  /** Acknowledge a machine's OPC-UA alarm condition through its agent (an `acknowledge` command). */
  acknowledgeEvent: (e: MachineEvent, comment: string) =>
    call<Command>("POST", "/events/acknowledge", undefined, { site: e.site, line: e.line, machine: e.machine, id: e.id, comment }),
  alertRules: () => get<AlertRule[]>("/alerts/rules"),
  writeTag: (s: Series, value: Value) =>
    call<Command>("POST", `/machines/${s.site}/${s.line}/${s.machine}/tags/${s.tag}/write`, undefined, { value }),
  command: (id: string) => get<Command>(`/commands/${id}`),
  commands: (params: Record<string, string | number>) => get<Command[]>("/commands", params),
  identities: () => get<Identity[]>("/identities"),
  identity: (name: string) => get<Identity>(`/identities/${encodeURIComponent(name)}`),
  addIdentity: (body: IdentityIn) => call<IdentityPassword>("POST", "/identities", undefined, body),
  setIdentityDisabled: (name: string, disabled: boolean) =>
    call<Identity>("POST", `/identities/${encodeURIComponent(name)}/${disabled ? "disable" : "enable"}`),
  rotateIdentity: (name: string) => call<IdentityPassword>("POST", `/identities/${encodeURIComponent(name)}/rotate`),
  removeIdentity: (name: string) => call<null>("DELETE", `/identities/${encodeURIComponent(name)}`),
};
