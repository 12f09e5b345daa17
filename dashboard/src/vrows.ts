// A windowed table body: only the rows in (and just around) its scroll box's view are in the DOM,
// so a list of 5,000 machines keeps a few dozen <tr>. Every row has the same height (CSS
// `.vtable tr.vrow td`), so a row's position is its index × that height and two spacer rows stand
// in for everything above and below the window.
import { h } from "./dom";

/** Rows drawn beyond each edge of the view, so a short scroll shows no blank before redrawing. */
const OVERSCAN = 12;

export class VirtualRows<T> {
  private items: T[] = [];
  private frame = 0;
  private readonly onScroll = (): void => this.schedule();

  constructor(
    private readonly box: HTMLElement,
    private readonly body: HTMLTableSectionElement,
    private readonly columns: number,
    private readonly rowPx: number,
    private readonly render: (item: T) => HTMLTableRowElement,
  ) {
    box.addEventListener("scroll", this.onScroll, { passive: true });
    window.addEventListener("resize", this.onScroll);
  }

  /** Show `items` (the whole list); the scroll position stays where the reader left it. */
  set(items: T[]): void {
    this.items = items;
    this.draw();
  }

  /** Scroll so that the item at `index` is at the top of the view. */
  reveal(index: number): void {
    this.box.scrollTop = index * this.rowPx;
    this.draw();
  }

  close(): void {
    this.box.removeEventListener("scroll", this.onScroll);
    window.removeEventListener("resize", this.onScroll);
    cancelAnimationFrame(this.frame);
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  private draw(): void {
    const n = this.items.length;
    const head = this.body.parentElement?.querySelector("thead")?.offsetHeight ?? 0;
    // Before layout (a box not yet on the page) assume a screenful.
    const view = this.box.clientHeight || window.innerHeight;
    const top = Math.max(0, this.box.scrollTop - head);
    const first = Math.min(n, Math.max(0, Math.floor(top / this.rowPx) - OVERSCAN));
    const last = Math.min(n, Math.ceil((top + view) / this.rowPx) + OVERSCAN);
    const rows: HTMLTableRowElement[] = [];
    if (first > 0) rows.push(this.spacer(first));
    for (let i = first; i < last; i++) rows.push(this.render(this.items[i]));
    if (last < n) rows.push(this.spacer(n - last));
    this.body.replaceChildren(...rows);
  }

  private spacer(count: number): HTMLTableRowElement {
    const cell = h("td", { colspan: this.columns });
    cell.style.height = `${count * this.rowPx}px`;
    return h("tr", { class: "spacer", "aria-hidden": "true" }, cell);
  }
}
