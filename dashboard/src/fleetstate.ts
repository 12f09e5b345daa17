// A machine's state as the engineer should read it: online / offline / stale / faulted.
//
// Machine status messages (wire: ms/v1/{site}/{line}/{machine}/status) give it directly when a
// device publishes them. The edge agent reports per-agent status instead, naming its machines in
// `poll_errors`; so a machine polled by an agent that is offline is offline too, and a machine
// whose newest reading is old is stale whatever its status says.
import type { Agent, Machine } from "./api";

export type State = "online" | "offline" | "stale" | "faulted" | "unknown";

/** No reading for this long while supposedly online ⇒ stale. */
export const STALE_MS = 60_000;
/** Agents refresh their retained status every 10 s by default; 3 missed refreshes ⇒ stale. */
export const AGENT_STALE_MS = 45_000;

// Which agent polls which machine, remembered across polls and reloads: an agent's `offline`
// status (its last will, or its goodbye on shutdown) carries no poll_errors, so at the very
// moment its machines go dark the API no longer says whose they were.
const OWNERS = "millstream.machine-owners";
let owners: Record<string, string> = readOwners();

function readOwners(): Record<string, string> {
  try {
    return JSON.parse(localStorage.getItem(OWNERS) ?? "{}") as Record<string, string>;
  } catch {
    return {};
  }
}

/** Note which agent reports which machine (call with every fresh /agents answer). */
export function learnOwners(agents: Agent[]): void {
  let changed = false;
  for (const a of agents) {
    for (const machine of Object.keys(a.poll_errors)) {
      if (owners[machine] !== a.agent_id) {
        owners = { ...owners, [machine]: a.agent_id };
        changed = true;
      }
    }
  }
  if (changed) {
    try {
      localStorage.setItem(OWNERS, JSON.stringify(owners));
    } catch {
      /* private mode: remembered for this page only */
    }
  }
}

export function agentOf(m: Machine, agents: Agent[]): Agent | undefined {
  const reporting = agents.find((a) => Object.prototype.hasOwnProperty.call(a.poll_errors, m.machine));
  if (reporting) return reporting;
  const id = owners[m.machine];
  return id === undefined ? undefined : agents.find((a) => a.agent_id === id);
}

export function agentState(a: Agent, now: number): State {
  if (a.state === "offline") return "offline";
  if (a.state === "faulted") return "faulted";
  if (now - a.last_seen_ms > AGENT_STALE_MS) return "stale";
  return a.state === "online" ? "online" : "unknown";
}

export interface Judged {
  state: State;
  why: string;
}

export function machineState(m: Machine, agents: Agent[], now: number): Judged {
  learnOwners(agents);
  const agent = agentOf(m, agents);
  if (agent) {
    const as = agentState(agent, now);
    if (as === "offline") return { state: "offline", why: `agent ${agent.agent_id} is offline` };
    if (as === "faulted") return { state: "faulted", why: `agent ${agent.agent_id} is faulted` };
  }
  if (m.state === "offline") return { state: "offline", why: m.detail ?? "machine reported offline" };
  if (m.state === "faulted") return { state: "faulted", why: m.detail ?? "machine reported a fault" };
  const last = m.last_reading_ms ?? m.last_seen_ms;
  if (last === null) return { state: "unknown", why: "no data received yet" };
  if (now - last > STALE_MS) return { state: "stale", why: `no reading for ${Math.round((now - last) / 1000)} s` };
  const errors = agent?.poll_errors[m.machine] ?? 0;
  return { state: "online", why: errors ? `${errors} poll errors since agent start` : "data flowing" };
}
