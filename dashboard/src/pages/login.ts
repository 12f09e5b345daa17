import { login, ApiError } from "../api";
import { h } from "../dom";
import { afterLogin } from "../router";

export function loginPage(root: HTMLElement): void {
  const user = h("input", { id: "username", name: "username", autocomplete: "username", required: true, autofocus: true });
  const pass = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "error", role: "alert", id: "login-error", hidden: true });
  const button = h("button", { type: "submit", class: "primary" }, "Log in");
  const form = h(
    "form",
    { class: "login card" },
    h("h1", null, "Millstream"),
    h("p", { class: "muted" }, "Machine data from the shop floor"),
    h("label", { for: "username" }, "User name"),
    user,
    h("label", { for: "password" }, "Password"),
    pass,
    error,
    button,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    error.hidden = true;
    button.disabled = true;
    login(user.value.trim(), pass.value)
      .then(() => afterLogin())
      .catch((e: unknown) => {
        error.textContent = e instanceof ApiError ? e.message : "The hub did not answer; is it running?";
        error.hidden = false;
        pass.value = "";
        pass.focus();
      })
      .finally(() => (button.disabled = false));
  });
  root.append(h("div", { class: "login-wrap" }, form));
}
