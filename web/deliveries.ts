// A webhook's recent deliveries, under its row once "Deliveries" is pressed: each event's
// state (delivered, pending with its next try, given up), its job (by name when the list
// above knows it), when it happened; read again when "Refresh" is pressed.
import { type Delivery, listDeliveries, type Webhook } from "./developer-api.ts";
import { timeOf } from "./developer-parts.ts";
import { deliveryDetail, developerError, momentText, STATE_LABELS } from "./developer-text.ts";
import { jobName } from "./job-card.ts";
import { entryOf } from "./jobs.ts";
import { busy, h, show } from "./page.ts";
import { current, sessionLost } from "./session.ts";

/** A badge's colour, as a job's (jobs.css): delivered as done, given up as failed. */
const BADGE = { delivered: "done", pending: "pending", given_up: "failed" } as const;

function deliveryRow(delivery: Delivery): HTMLLIElement {
  const entry = entryOf(delivery.jobId);
  const job = entry ? jobName(entry.job) : `job ${delivery.jobId}`;
  const badge = h("span", { class: "badge" }, STATE_LABELS[delivery.state]);
  badge.dataset.status = BADGE[delivery.state];
  return h(
    "li",
    { class: "delivery" },
    h("p", { class: "delivery-head" }, badge, " ", h("code", {}, delivery.event), " · ", job),
    h(
      "p",
      { class: "meta" },
      timeOf(delivery.createdAt, momentText(delivery.createdAt)),
      " · ",
      deliveryDetail(delivery),
    ),
  );
}

/** The deliveries box for `webhook`, hidden until `toggle` opens it (and reads them). */
export function deliveriesBox(webhook: Webhook, toggle: HTMLButtonElement): HTMLElement {
  const list = h("ul", { class: "deliveries card-list" });
  const empty = h("p", { class: "empty", hidden: true }, "Nothing sent yet: an event is sent when a conversion ends.");
  const refreshed = h("p", { class: "meta", role: "status" });
  const message = h("div", { class: "messages" });
  message.setAttribute("aria-live", "polite");
  const refresh = h("button", { type: "button", class: "quiet" }, "Refresh");
  const box = h(
    "section",
    { class: "deliveries-box stack", hidden: true, id: `deliveries-${webhook.id}` },
    h("div", { class: "row deliveries-head" }, h("h5", {}, "Recent deliveries"), refresh),
    message,
    list,
    empty,
    refreshed,
  );
  box.setAttribute("aria-label", `Recent deliveries to ${webhook.url}`);

  async function load() {
    const mine = current;
    if (!mine) return;
    busy(refresh, "Refreshing…");
    show(message, null);
    try {
      const deliveries = await listDeliveries(mine.token, webhook.id);
      if (current !== mine) return;
      list.replaceChildren(...deliveries.map(deliveryRow));
      empty.hidden = deliveries.length > 0;
      refreshed.textContent = `As of ${momentText(new Date().toISOString())}.`;
    } catch (error) {
      if (!sessionLost(error)) show(message, developerError(error, "webhook"), "error");
    } finally {
      busy(refresh, null);
    }
  }

  const shown = (open: boolean) => {
    box.hidden = !open;
    toggle.textContent = open ? "Hide deliveries" : "Deliveries";
    toggle.setAttribute("aria-label", `${open ? "Hide deliveries" : "Deliveries"} to ${webhook.url}`);
    toggle.setAttribute("aria-expanded", String(open));
  };
  shown(false);
  toggle.setAttribute("aria-controls", box.id);
  toggle.addEventListener("click", () => {
    shown(box.hidden !== false); // hidden: open it
    if (!box.hidden) void load();
  });
  refresh.addEventListener("click", () => void load());
  return box;
}
