// Client-side navigation (history API); the hub answers every app path with index.html.
let renderFn: () => void = () => {};

export function onNavigate(fn: () => void): void {
  renderFn = fn;
}

export function navigate(path: string): void {
  if (path !== location.pathname + location.search) history.pushState(null, "", path);
  renderFn();
}

export function afterLogin(): void {
  const back = sessionStorage.getItem("millstream.after-login");
  sessionStorage.removeItem("millstream.after-login");
  navigate(back && back !== "/login" ? back : "/");
}

/** An in-app link: a real href (open in new tab works), client-side navigation on click. */
export function linkHandler(path: string): (ev: Event) => void {
  return (ev: Event) => {
    const e = ev as MouseEvent;
    if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    ev.preventDefault();
    navigate(path);
  };
}
