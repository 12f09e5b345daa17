// Dead letters (admin): messages the hub refused, newest first, with the reason and a preview.
import { api, ApiError, type DeadLetter } from "../api";
import { clear, fmtNum, fmtTime, h } from "../dom";

export function deadLettersPage(root: HTMLElement): () => void {
  let alive = true;
  const body = h("section", { class: "card", id: "dead-letters" }, h("p", { class: "muted" }, "Loading…"));
  root.append(
    h("div", { class: "page-head" }, h("h1", null, "Dead letters"), h("button", { class: "small", onclick: () => void load() }, "Refresh")),
    h("p", { class: "muted" }, "Messages that broke the wire contract (docs/wire.md) and were stored instead of ingested."),
    body,
  );

  async function load(): Promise<void> {
    try {
      const rows = await api.deadLetters(200);
      if (alive) draw(rows);
    } catch (e) {
      if (!alive) return;
      const text = e instanceof ApiError && e.status === 403 ? "Only administrators may see dead letters." : `Could not load dead letters: ${e instanceof Error ? e.message : String(e)}`;
      clear(body, h("p", { class: "error" }, text));
    }
  }

  function draw(rows: DeadLetter[]): void {
    if (!rows.length) {
      clear(body, h("p", { class: "ok-text" }, "No dead letters: every message met the contract."));
      return;
    }
    const byReason = new Map<string, number>();
    rows.forEach((r) => byReason.set(r.reason, (byReason.get(r.reason) ?? 0) + 1));
    clear(
      body,
      h("p", null, [...byReason].map(([r, n]) => `${r}: ${n}`).join(" · ")),
      h(
        "div",
        { class: "scroll" },
        h(
          "table",
          { class: "grid dead" },
          h("thead", null, h("tr", null, ...["Received", "Reason", "Topic", "Publisher", "Size", "Message", "Payload"].map((t) => h("th", null, t)))),
          h(
            "tbody",
            null,
            ...rows.map((r) =>
              h(
                "tr",
                { "data-id": r.id },
                h("td", null, fmtTime(r.received_at)),
                h("td", null, h("code", null, r.reason)),
                h("td", null, h("code", null, r.topic)),
                h("td", null, r.src ?? "–"),
                h("td", { class: "num" }, `${fmtNum(r.payload_size)} B`),
                h("td", null, r.message),
                h("td", null, h("code", { class: "preview" }, r.payload_preview.slice(0, 160))),
              ),
            ),
          ),
        ),
      ),
    );
  }

  void load();
  return () => {
    alive = false;
  };
}
