// Broker identities (admins): every MQTT device and agent the hub made a broker user for, and
// adding, disabling, enabling, rotating and removing them (docs/deploy.md "Broker identities
// with dynamic security"). A password is shown once, right after it was made: the broker keeps
// only a hash and the hub keeps nothing.
import { api, ApiError, type Identity, type IdentityIn, type IdentityPassword, type Me } from "../api";
import { badge, clear, fmtTime, h } from "../dom";
import { linkHandler } from "../router";

/** What went wrong, in words an admin can act on (the API's own detail included). */
export function identityProblem(e: unknown, name = ""): string {
  if (!(e instanceof ApiError)) return `The hub could not be reached (${e instanceof Error ? e.message : String(e)}).`;
  const who = name ? `“${name}”` : "it";
  switch (e.status) {
    case 409:
      return `An identity named ${who} exists already: rotate its password or remove it first.`;
    case 422:
      return `Not accepted: ${e.message}`;
    case 404:
      return `There is no identity ${who} (removed meanwhile?).`;
    case 403:
      return "Only administrators may manage broker identities.";
    case 503:
      return `The broker cannot be reached or refused the change, so nothing was changed: ${e.message}`;
    default:
      return `The hub answered ${e.status}: ${e.message}`;
  }
}

function splitList(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((m) => m.trim())
    .filter(Boolean);
}

export function identitiesPage(root: HTMLElement, _params: string[], me: Me | null): () => void {
  const banner = h("div", { class: "banner error-banner", id: "identities-problem", hidden: true, role: "alert" });
  const secret = h("section", { class: "card secret", id: "identity-secret", hidden: true, role: "status" });
  const body = h("section", { class: "card", id: "identities-table" }, h("p", { class: "muted" }, "Loading…"));
  const refresh = h("button", { class: "small", type: "button", onclick: () => void load() }, "Refresh");
  root.append(
    h("div", { class: "page-head" }, h("h1", null, "Broker identities"), refresh),
    h(
      "p",
      { class: "muted" },
      "Each MQTT device and edge agent connects to the broker with a user name and password of its own. " +
        "A device may publish only for its machines, an agent for any machine of its line; disabling one cuts it off at once.",
    ),
    banner,
    secret,
  );
  if (me?.role !== "admin") {
    refresh.hidden = true;
    clear(body, h("p", { class: "muted" }, "Broker identities are for admins."));
    root.append(body);
    return () => {};
  }
  let alive = true;
  let busy = false;

  // The add form.
  const kind = h(
    "select",
    { id: "identity-kind", "aria-label": "Kind" },
    h("option", { value: "device" }, "device"),
    h("option", { value: "agent" }, "agent"),
  ) as HTMLSelectElement;
  const input = (id: string, label: string, attrs: Record<string, string | number | boolean> = {}) =>
    h("input", { id, "aria-label": label, autocomplete: "off", spellcheck: "false", ...attrs }) as HTMLInputElement;
  const name = input("identity-name", "Name", { required: true, pattern: "[A-Za-z0-9_\\-]{1,64}", placeholder: "press-gw", size: 16 });
  const site = input("identity-site", "Site", { required: true, placeholder: "plant-a", size: 12 });
  const line = input("identity-line", "Line", { required: true, placeholder: "line-3", size: 12 });
  const machines = input("identity-machines", "Machines", { placeholder: "press-01, press-02", size: 22 });
  const src = input("identity-src", "src", { placeholder: "(the name)", size: 14 });
  const machinesField = h("label", null, "Machines ", machines);
  const add = h("button", { class: "small on", id: "identity-add", type: "submit" }, "Add");
  const formProblem = h("p", { class: "error", id: "identity-form-problem", hidden: true });
  const form = h(
    "form",
    { class: "identity-form", id: "identity-form" },
    h("label", null, "Kind ", kind),
    h("label", null, "Name ", name),
    h("label", null, "Site ", site),
    h("label", null, "Line ", line),
    machinesField,
    h("label", null, "src ", src),
    add,
  ) as HTMLFormElement;
  const hint = h("p", { class: "muted small", id: "identity-kind-hint" });
  const showKind = () => {
    machinesField.hidden = kind.value === "agent";
    hint.textContent =
      kind.value === "agent"
        ? "An agent (edge-agent on a line PC) publishes for any machine of its line; its name is its agent.id."
        : "A device publishes only for the machines listed (comma-separated). src is the publisher id in its payloads; it defaults to the name.";
  };
  kind.onchange = showKind;
  showKind();
  root.append(h("section", { class: "card" }, h("h2", null, "Add a device or agent"), form, hint, formProblem), body);

  function problem(text: string | null): void {
    banner.hidden = text === null;
    banner.textContent = text ?? "";
  }

  /** The password, once, with the instruction to copy it now. */
  function reveal(made: IdentityPassword, what: string): void {
    const value = h("code", { id: "identity-password", class: "password" }, made.password);
    const copied = h("span", { class: "muted", id: "identity-copied" });
    const copy = h("button", { class: "small", type: "button", id: "identity-copy" }, "Copy");
    copy.onclick = () => {
      navigator.clipboard
        ?.writeText(made.password)
        .then(() => (copied.textContent = "Copied."))
        .catch(() => (copied.textContent = "Select the password and copy it by hand."));
    };
    const done = h("button", { class: "small", type: "button", id: "identity-secret-done" }, "I have copied it");
    done.onclick = () => {
      secret.hidden = true;
      clear(secret);
    };
    clear(
      secret,
      h("h2", null, `${what}: password for ${made.name}`),
      h("p", { class: "password-line" }, value, " ", copy, " ", copied),
      h(
        "p",
        { class: "warn-text", id: "identity-once" },
        h("strong", null, "Copy it now: it is not shown again. "),
        "The broker keeps only a hash of it and the hub keeps nothing; a lost password can only be replaced (Rotate).",
      ),
      done,
    );
    secret.hidden = false;
    secret.scrollIntoView({ block: "nearest" });
  }

  form.onsubmit = async (ev: Event) => {
    ev.preventDefault();
    formProblem.hidden = true;
    const body: IdentityIn = {
      name: name.value.trim(),
      kind: kind.value === "agent" ? "agent" : "device",
      site: site.value.trim(),
      line: line.value.trim(),
      machines: kind.value === "agent" ? [] : splitList(machines.value),
    };
    if (src.value.trim()) body.src = src.value.trim();
    if (body.kind === "device" && !body.machines.length) {
      formProblem.hidden = false;
      formProblem.textContent = "A device publishes for at least one machine: name it under Machines.";
      return;
    }
    add.disabled = true;
    try {
      const made = await api.addIdentity(body);
      if (!alive) return;
      reveal(made, `${body.kind} ${made.name} added`);
      name.value = "";
      machines.value = "";
      src.value = "";
      await load();
    } catch (e) {
      formProblem.hidden = false;
      formProblem.textContent = identityProblem(e, body.name);
    } finally {
      add.disabled = false;
    }
  };

  async function act(i: Identity, what: () => Promise<void>): Promise<void> {
    if (busy) return;
    busy = true;
    problem(null);
    try {
      await what();
    } catch (e) {
      problem(identityProblem(e, i.name));
    } finally {
      busy = false;
      if (alive) await load();
    }
  }

  function actions(i: Identity): HTMLElement {
    const toggle = h("button", { class: "small toggle", type: "button" }, i.disabled ? "Enable" : "Disable");
    toggle.onclick = () =>
      void act(i, async () => {
        await api.setIdentityDisabled(i.name, !i.disabled);
      });
    const rotate = h("button", { class: "small rotate", type: "button" }, "Rotate password");
    rotate.onclick = () => {
      if (!window.confirm(`Give ${i.name} a new password? The old one stops working at once; the ${i.kind} must be given the new one.`)) return;
      void act(i, async () => reveal(await api.rotateIdentity(i.name), `${i.kind} ${i.name} rotated`));
    };
    const remove = h("button", { class: "small remove", type: "button" }, "Remove");
    remove.onclick = () => {
      if (!window.confirm(`Remove ${i.kind} ${i.name}? The broker forgets it and disconnects it; its stored data stays.`)) return;
      void act(i, async () => {
        await api.removeIdentity(i.name);
      });
    };
    const path = `/identities/${encodeURIComponent(i.name)}/watch`;
    const watch = h("a", { class: "watch", href: path, onclick: linkHandler(path), title: "Its messages live, as the hub judges them" }, "Watch");
    return h("span", { class: "row-actions" }, watch, toggle, rotate, remove);
  }

  async function load(): Promise<void> {
    try {
      const rows = await api.identities();
      if (alive) draw(rows);
    } catch (e) {
      if (alive) problem(`Cannot load the identities: ${identityProblem(e)}`);
    }
  }

  function draw(rows: Identity[]): void {
    if (!rows.length) {
      clear(body, h("p", { class: "muted", id: "identities-empty" }, "No broker identities yet: add a device or an agent above."));
      return;
    }
    clear(
      body,
      h(
        "div",
        { class: "scroll" },
        h(
          "table",
          { class: "grid identities" },
          h("thead", null, h("tr", null, ...["Name", "Kind", "Site / line", "Machines", "src", "State", "Created", ""].map((t) => h("th", null, t)))),
          h(
            "tbody",
            null,
            ...rows.map((i) =>
              h(
                "tr",
                { "data-identity": i.name, "data-disabled": String(i.disabled), class: i.disabled ? "row-disabled" : "" },
                h("td", null, h("strong", null, i.name)),
                h("td", null, i.kind),
                h("td", null, `${i.site} / ${i.line}`),
                h("td", { class: "machines" }, i.kind === "agent" ? h("span", { class: "muted" }, "any of its line") : i.machines.join(", ")),
                h("td", null, h("code", null, i.src)),
                h("td", { class: "state" }, i.disabled ? badge("offline", "disabled") : badge("online", "enabled")),
                h("td", { class: "why" }, `${fmtTime(i.created_at)}${i.created_by ? ` by ${i.created_by}` : ""}`),
                h("td", null, actions(i)),
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
