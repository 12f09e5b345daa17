// The command audit log (admins): who wrote what to which machine (or acknowledged which of its
// alarms), the value before and read back, and what the agent answered (docs/commands.md).
import { api, type Command, type Me } from "../api";
import { badge, clear, fmtTime, fmtValue, h } from "../dom";
import { linkHandler } from "../router";

const POLL_MS = 15_000;

function look(status: Command["status"]): string {
  return status === "done" ? "online" : status === "pending" ? "stale" : "faulted";
}

export function commandsPage(root: HTMLElement, _params: string[], me: Me | null): () => void {
  const machine = h("input", { id: "commands-machine", placeholder: "machine", "aria-label": "Machine", size: 14 }) as HTMLInputElement;
  const banner = h("div", { class: "banner", hidden: true, role: "status" });
  const body = h("section", { class: "card", id: "commands-table" }, h("p", { class: "muted" }, "Loading…"));
  machine.onchange = () => void load();
  root.append(h("div", { class: "page-head" }, h("h1", null, "Commands"), h("span", { class: "filters" }, machine)), banner, body);
  let alive = true;
  let timer: number | undefined;
  if (me?.role !== "admin") {
    clear(body, h("p", { class: "muted" }, "The audit log is for admins."));
    return () => {};
  }

  async function load(): Promise<void> {
    window.clearTimeout(timer);
    try {
      const params: Record<string, string | number> = { limit: 200 };
      if (machine.value.trim()) params.machine = machine.value.trim();
      const rows = await api.commands(params);
      if (!alive) return;
      banner.hidden = true;
      draw(rows);
    } catch (e) {
      if (!alive) return;
      banner.hidden = false;
      banner.textContent = `Cannot load the audit log (${e instanceof Error ? e.message : String(e)}).`;
    } finally {
      if (alive) timer = window.setTimeout(() => void load(), POLL_MS);
    }
  }

  function draw(rows: Command[]): void {
    if (!rows.length) {
      clear(body, h("p", { class: "muted", id: "commands-empty" }, "No writes yet."));
      return;
    }
    clear(
      body,
      h(
        "div",
        { class: "scroll" },
        h(
          "table",
          { class: "grid commands" },
          h("thead", null, h("tr", null, ...["When", "Who", "Machine", "Tag", "Asked", "Before", "Read back", "Result", "Detail"].map((t) => h("th", null, t)))),
          h(
            "tbody",
            null,
            ...rows.map((c) => {
              const path = `/machines/${c.site}/${c.line}/${c.machine}`;
              // A configuration push names an agent, not a machine; its value is the version.
              const config = c.kind === "config";
              // An acknowledge names a machine event (in `tag`) and carries the operator's comment.
              const ack = c.kind === "acknowledge";
              const asked = config ? `version ${(c.value as { version?: number } | null)?.version ?? "?"}` : ack ? `acknowledge: ${String(c.value ?? "") || "(no comment)"}` : fmtValue(c.value);
              return h(
                "tr",
                { "data-id": c.id, "data-status": c.status },
                h("td", null, fmtTime(c.issued_at)),
                h("td", null, c.issued_by),
                h("td", null, config ? `agent ${c.agent_id}` : h("a", { href: path, onclick: linkHandler(path) }, `${c.site} / ${c.line} / ${c.machine}`)),
                h("td", null, ack ? `event ${c.tag}` : c.tag),
                h("td", { class: "num" }, asked),
                h("td", { class: "num" }, fmtValue(c.previous)),
                h("td", { class: "num" }, fmtValue(c.read_back)),
                h("td", null, badge(look(c.status), c.status)),
                h("td", { class: "why" }, c.detail ?? ""),
              );
            }),
          ),
        ),
      ),
    );
  }

  void load();
  return () => {
    alive = false;
    window.clearTimeout(timer);
  };
}
