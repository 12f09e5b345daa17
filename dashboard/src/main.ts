// The Millstream dashboard: a small single-page app with history-API routes, served by the hub.
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { api, loggedIn, logout, whenLoggedOut, type Me } from "./api";
import { h, clear } from "./dom";
import { linkHandler, onNavigate } from "./router";
import { loginPage } from "./pages/login";
import { fleetPage } from "./pages/fleet";
import { machinePage } from "./pages/machine";
import { completenessPage } from "./pages/completeness";
import { deadLettersPage } from "./pages/deadletters";
import { alertsPage } from "./pages/alerts";
import { commandsPage } from "./pages/commands";
import { identitiesPage } from "./pages/identities";
import { identityWatchPage } from "./pages/identitywatch";
import { chartBenchPage } from "./pages/chartbench";

type Cleanup = () => void;
type Page = (root: HTMLElement, params: string[], me: Me | null) => Cleanup | void;

const routes: [RegExp, Page, string][] = [
  [/^\/(?:fleet)?$/, fleetPage, "fleet"],
  [/^\/machines\/([\w-]+)\/([\w-]+)\/([\w-]+)$/, machinePage, "fleet"],
  [/^\/completeness$/, completenessPage, "completeness"],
  [/^\/alerts$/, alertsPage, "alerts"],
  [/^\/dead-letters$/, deadLettersPage, "dead-letters"],
  [/^\/commands$/, commandsPage, "commands"],
  [/^\/identities$/, identitiesPage, "identities"],
  [/^\/identities\/([^/]+)\/watch$/, identityWatchPage, "identities"],
];

const app = document.getElementById("app")!;
let cleanup: Cleanup | void;
let me: Me | null = null;

function link(path: string, text: string, active: boolean): HTMLElement {
  return h(
    "a",
    {
      href: path,
      class: active ? "active" : "",
      onclick: linkHandler(path),
    },
    text,
  );
}

async function render(): Promise<void> {
  if (cleanup) cleanup();
  cleanup = undefined;
  const path = location.pathname;
  if (path === "/bench/charts") {
    clear(app);
    chartBenchPage(app);
    return;
  }
  if (path === "/login" || !loggedIn()) {
    me = null;
    if (path !== "/login") history.replaceState(null, "", "/login");
    clear(app);
    loginPage(app);
    return;
  }
  if (!me) {
    try {
      me = await api.me();
    } catch {
      return; // logged out by the API client: render() runs again
    }
  }
  const match = routes.map(([re, page, nav]) => [re.exec(path), page, nav] as const).find(([m]) => m);
  const [m, page, nav] = match ?? [null, fleetPage, "fleet"];
  const main = h("main", { id: "page" });
  const header = h(
    "header",
    { class: "top" },
    h("a", { class: "brand", href: "/", onclick: linkHandler("/") }, "Millstream"),
    h(
      "nav",
      null,
      link("/", "Fleet", nav === "fleet"),
      link("/alerts", "Alerts", nav === "alerts"),
      link("/completeness", "Completeness", nav === "completeness"),
      me.role === "admin" ? link("/commands", "Commands", nav === "commands") : null,
      me.role === "admin" ? link("/dead-letters", "Dead letters", nav === "dead-letters") : null,
      me.role === "admin" ? link("/identities", "Identities", nav === "identities") : null,
    ),
    h(
      "span",
      { class: "who" },
      h("span", { class: "user" }, `${me.subject} (${me.role})`),
      h("button", { class: "link", onclick: () => logout() }, "Log out"),
    ),
  );
  clear(app, header, main);
  cleanup = page(main, m ? m.slice(1) : [], me);
}

whenLoggedOut(() => {
  me = null;
  if (location.pathname !== "/login") {
    const back = location.pathname + location.search;
    sessionStorage.setItem("millstream.after-login", back);
  }
  history.replaceState(null, "", "/login");
  void render();
});

onNavigate(() => void render());
window.addEventListener("popstate", () => void render());
void render();
