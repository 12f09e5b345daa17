// States as the engineer should read them: online / offline / stale / faulted.
//
// A machine's state and its reason come from the hub (GET /api/v1/machines: `state`, `reason`,
// `agent`): it knows which agent polls which machine, so a machine whose agent is offline is
// offline there, for every browser alike. Only an agent's own staleness is judged here.
import type { Agent, Machine } from "./api";

export type State = "online" | "offline" | "stale" | "faulted" | "unknown";

/** Agents refresh their retained status every 10 s by default; 3 missed refreshes ⇒ stale. */
export const AGENT_STALE_MS = 45_000;

const STATES: readonly State[] = ["online", "offline", "stale", "faulted", "unknown"];

export function agentOf(m: Machine, agents: Agent[]): Agent | undefined {
  return m.agent === null ? undefined : agents.find((a) => a.agent_id === m.agent);
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

export function machineState(m: Machine): Judged {
  const state = (STATES as readonly string[]).includes(m.state) ? (m.state as State) : "unknown";
  return { state, why: m.reason };
}
