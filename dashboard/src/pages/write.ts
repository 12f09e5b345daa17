// Writing a tag from the machine page (operators): enter a value, confirm it against the value
// now and the tag's limits, send it, and show what the machine's agent answered, with the value
// read back (docs/commands.md). The agent checks everything again; this only saves a round trip.
import { api, type Command, type Series, type Value } from "../api";
import { badge, fmtValue, h } from "../dom";

const POLL_MS = 1000;
const POLL_FOR_MS = 60_000;

function parse(text: string, now: Value): Value | Error {
  if (typeof now === "boolean") return text === "true";
  if (typeof now === "string") return text;
  const n = Number(text.trim());
  return text.trim() === "" || !Number.isFinite(n) ? new Error("Enter a number.") : n;
}

function range(s: Series): string {
  const unit = s.unit ? ` ${s.unit}` : "";
  if (s.write_min != null && s.write_max != null) return `${fmtValue(s.write_min)} – ${fmtValue(s.write_max)}${unit}`;
  if (s.write_min != null) return `at least ${fmtValue(s.write_min)}${unit}`;
  if (s.write_max != null) return `at most ${fmtValue(s.write_max)}${unit}`;
  return "any";
}

function outside(s: Series, v: Value): string | null {
  if (typeof v !== "number") return null;
  if (s.write_min != null && v < s.write_min) return `${fmtValue(v)} is below the lowest allowed, ${fmtValue(s.write_min)}.`;
  if (s.write_max != null && v > s.write_max) return `${fmtValue(v)} is above the highest allowed, ${fmtValue(s.write_max)}.`;
  return null;
}

function look(status: Command["status"]): string {
  return status === "done" ? "online" : status === "pending" ? "stale" : "faulted";
}

/** Open the write dialog for one tag whose current value is `now`. */
export function openWrite(s: Series, now: Value): void {
  const unit = s.unit ? ` ${s.unit}` : "";
  const input =
    typeof now === "boolean"
      ? (h("select", { id: "write-value" }, h("option", { value: "true" }, "true"), h("option", { value: "false" }, "false")) as HTMLSelectElement)
      : (h("input", { id: "write-value", type: typeof now === "number" ? "number" : "text", step: "any", value: now === null ? "" : String(now) }) as HTMLInputElement);
  if (input instanceof HTMLSelectElement) input.value = String(!now);
  const problem = h("p", { class: "error", id: "write-problem", hidden: true });
  const confirmText = h("p", { id: "write-confirm", hidden: true });
  const result = h("div", { id: "write-result", hidden: true });
  const next = h("button", { class: "small", id: "write-next", type: "button" }, "Next");
  const send = h("button", { class: "small on", id: "write-send", type: "button", hidden: true }, "Write to the machine");
  const close = h("button", { class: "small", id: "write-close", type: "button" }, "Cancel");
  const dialog = h(
    "dialog",
    { id: "write-dialog", class: "card" },
    h("h2", null, `Write ${s.tag}`, h("span", { class: "muted sub" }, ` ${s.machine}`)),
    h("p", null, "Now: ", h("strong", { id: "write-now" }, `${fmtValue(now)}${unit}`), h("span", { class: "muted" }, ` · allowed: ${range(s)}`)),
    h("label", null, "New value ", input, unit),
    problem,
    confirmText,
    result,
    h("div", { class: "actions" }, next, send, close),
  ) as HTMLDialogElement;
  let value: Value = null;

  next.onclick = () => {
    const v = parse(input.value, now);
    const why = v instanceof Error ? v.message : outside(s, v);
    problem.hidden = why === null;
    problem.textContent = why ?? "";
    if (why !== null || v instanceof Error) return;
    value = v;
    confirmText.hidden = false;
    confirmText.textContent = `Change ${s.tag} on ${s.machine} from ${fmtValue(now)} to ${fmtValue(v)}${unit}? Allowed: ${range(s)}.`;
    input.disabled = true;
    next.hidden = true;
    send.hidden = false;
  };

  function show(c: Command): void {
    result.hidden = false;
    const after = c.status === "done" ? ` Read back: ${fmtValue(c.read_back)}${unit} (was ${fmtValue(c.previous)}).` : "";
    const said = (c.detail ?? "").replace(/[.]?$/, ".");
    const waiting = c.status === "pending" ? "Sent; waiting for the agent's answer…" : said;
    result.replaceChildren(badge(look(c.status), c.status), " ", h("span", { id: "write-detail" }, `${waiting}${after}`));
    result.dataset.status = c.status;
  }

  send.onclick = async () => {
    send.disabled = true;
    send.hidden = true; // one write per dialog: a second one is a new decision
    close.textContent = "Close";
    try {
      let c = await api.writeTag(s, value);
      show(c);
      const until = Date.now() + POLL_FOR_MS;
      while (c.status === "pending" && dialog.open && Date.now() < until) {
        await new Promise((r) => window.setTimeout(r, POLL_MS));
        c = await api.command(c.id);
        show(c);
      }
    } catch (e) {
      result.hidden = false;
      result.dataset.status = "error";
      result.replaceChildren(badge("faulted", "not sent"), " ", e instanceof Error ? e.message : String(e));
    }
  };
  close.onclick = () => dialog.close();
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  input.focus();
}
