// One conversion in the list: its cover, name, status (place in line, progress), facts,
// options, error, player and actions. The primary action (Play, Retry) is always in view;
// the others (Download, Copy share link, Stop sharing, Delete) sit in a menu that a narrow
// screen folds behind "More" (a disclosure button: Escape and a click elsewhere close it)
// and a wide one shows inline.
import type { ShareLink } from "../gateway/models.ts";
import type { Job } from "./api.ts";
import { fetchCover } from "./api.ts";
import { h } from "./dom.ts";
import { clock, hostOf, placeInLine, sizeText } from "./format.ts";
import { soundWords, tagWords, trimWords } from "./options.ts";
import { current } from "./session.ts";

export interface Entry {
  job: Job;
  item: HTMLLIElement;
  parts: ReturnType<typeof cardParts>;
  /** a signed link to the MP3 (POST /jobs/:id/share), made once for playing, downloading and sharing */
  link?: Promise<ShareLink>;
  /** the cover's object URL once fetched (null: the job has none) */
  cover?: Promise<string | null>;
  stream?: AbortController;
}

export interface JobActions {
  play(entry: Entry): void;
  download(entry: Entry): void;
  share(entry: Entry): void;
  unshare(entry: Entry): void;
  retry(entry: Entry): void;
  remove(entry: Entry): void;
}

export const finished = (job: Job) => job.status === "done" || job.status === "failed";
export const jobName = (job: Job) => job.source.filename || job.source.url || "video";

function cardParts(name: string, id: string) {
  const hidden = () => h("span", { class: "visually-hidden" }, ` ${name}`);
  const parts = {
    cover: h("img", { class: "cover", alt: `Cover of ${name}`, hidden: true }),
    badge: h("span", { class: "badge" }),
    meta: h("p", { class: "meta" }),
    options: h("p", { class: "meta job-options" }),
    bar: h("progress", { max: 100 }),
    error: h("p", { class: "job-error" }),
    play: h("button", { type: "button", class: "primary" }, "Play", hidden()),
    retry: h("button", { type: "button", class: "primary" }, "Retry", hidden()),
    more: h(
      "button",
      { type: "button", class: "more" },
      h("span", { class: "dots" }, "⋯"),
      h("span", { class: "visually-hidden" }, `More actions for ${name}`),
    ),
    menu: h("div", { class: "menu", id: `menu-${id}` }),
    download: h("button", { type: "button" }, "Download MP3", hidden()),
    share: h("button", { type: "button" }, "Copy share link", hidden()),
    unshare: h("button", { type: "button" }, "Stop sharing", hidden()),
    remove: h("button", { type: "button", class: "danger" }, "Delete", hidden()),
    audio: h("audio", { controls: true, preload: "metadata", hidden: true }),
    /** what sharing did (a link copied, links stopped), beside the actions that did it (read out from #job-news) */
    note: h("p", { class: "job-note", hidden: true }),
  };
  parts.bar.setAttribute("aria-label", `Progress of ${name}`);
  parts.audio.setAttribute("aria-label", `MP3 of ${name}`);
  parts.more.firstElementChild!.setAttribute("aria-hidden", "true");
  parts.more.setAttribute("aria-expanded", "false");
  parts.more.setAttribute("aria-controls", parts.menu.id);
  parts.menu.append(parts.download, parts.share, parts.unshare, parts.remove);
  return parts;
}

/** The list item of a new job, its buttons wired to `actions`. */
export function buildCard(job: Job, actions: JobActions): Entry {
  const name = jobName(job);
  const parts = cardParts(name, job.id);
  const art = h("div", { class: "art" }, parts.cover);
  art.setAttribute("aria-hidden", "true"); // until a cover is shown: then the image speaks for itself
  const item = h(
    "li",
    { class: "job" },
    art,
    h(
      "div",
      { class: "body" },
      h("div", { class: "head" }, h("h3", { class: "name", title: name }, name), parts.badge),
      parts.meta,
      parts.options,
      parts.bar,
      parts.error,
      h("div", { class: "actions" }, parts.play, parts.retry, parts.more, parts.menu),
      parts.note,
    ),
    parts.audio, // the whole row's width: a phone's player needs it
  );
  item.dataset.id = job.id;
  const entry: Entry = { job, item, parts };
  parts.play.addEventListener("click", () => actions.play(entry));
  parts.retry.addEventListener("click", () => actions.retry(entry));
  for (const action of ["download", "share", "unshare"] as const)
    parts[action].addEventListener("click", () => {
      closeMenu(entry);
      actions[action](entry);
    });
  parts.remove.addEventListener("click", () => actions.remove(entry));
  menuKeys(entry);
  return entry;
}

export function statusText(job: Job): string {
  if (job.status === "done") return "Done";
  if (job.status === "failed") return "Failed";
  if (job.phase === "downloading") return job.progress > 0 ? `Downloading ${job.progress}%` : "Downloading…";
  if (job.status === "queued") return job.queuePosition ? placeInLine(job.queuePosition) : "Queued";
  return `Converting ${job.progress}%`;
}

/** Shows the entry's job: status, facts, options, what can be done with it. */
export function showJob(entry: Entry) {
  const { job, parts } = entry;
  parts.badge.textContent = statusText(job);
  parts.badge.dataset.status = job.status;
  parts.meta.textContent = facts(job);
  const options = job.options ?? {};
  const words = [soundWords(options).join(", "), trimWords(options), tagWords(options)].filter(Boolean);
  parts.options.textContent = words.join(" · ");
  parts.options.hidden = words.length === 0;
  parts.bar.hidden = finished(job);
  if (job.progress === 0 && (job.status === "queued" || job.phase === "downloading"))
    parts.bar.removeAttribute("value"); // indeterminate: waiting
  else parts.bar.value = job.progress;
  parts.error.hidden = job.status !== "failed";
  parts.error.textContent = job.status === "failed" ? `Could not convert: ${job.error ?? "no reason given"}` : "";
  parts.play.hidden = job.status !== "done" || !parts.audio.hidden;
  for (const done of [parts.download, parts.share, parts.unshare]) done.hidden = job.status !== "done";
  parts.retry.hidden = job.status !== "failed";
  if (job.status === "done") void showCover(entry);
}

function facts(job: Job): string {
  const when = new Date(job.createdAt).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  const kind = job.source.contentType.startsWith("audio/") ? "audio file" : "video";
  const list = [
    job.audio ? `MP3 ${clock(job.audio.durationSec)}, ${sizeText(job.audio.bytes)}` : null,
    job.source.kind === "url" ? hostOf(job.source.url) : null,
    job.source.bytes ? `${sizeText(job.source.bytes)} ${kind}` : null,
    when,
    job.expiresAt ? `kept until ${new Date(job.expiresAt).toLocaleString(undefined, { dateStyle: "medium" })}` : null,
  ];
  return list.filter(Boolean).join(" · ");
}

/** Fetches the cover once (with the token, as an object URL); a job without one keeps the plain tile. */
async function showCover(entry: Entry) {
  if (entry.cover || !current) return;
  entry.cover = fetchCover(current.token, entry.job).then(
    (blob) => (blob ? URL.createObjectURL(blob) : null),
    () => {
      entry.cover = undefined; // a failed fetch may be tried again at the next change
      return null;
    },
  );
  const url = await entry.cover;
  if (!url || !entry.item.isConnected) return;
  const { cover } = entry.parts;
  cover.addEventListener("load", () => {
    cover.hidden = false;
    cover.parentElement!.removeAttribute("aria-hidden");
  });
  cover.src = url;
}

/** Lets go of the cover's object URL. */
export function dropCover(entry: Entry) {
  void entry.cover?.then((url) => url && URL.revokeObjectURL(url));
}

// ── the menu (folded on narrow screens) ─────────────────────────────────────
function openMenu(entry: Entry) {
  const { more, menu } = entry.parts;
  more.setAttribute("aria-expanded", "true");
  menu.classList.add("open");
  (menu.querySelector("button:not([hidden])") as HTMLButtonElement | null)?.focus();
}

export function closeMenu(entry: Entry, refocus = false) {
  const { more, menu } = entry.parts;
  if (!menu.classList.contains("open")) return;
  more.setAttribute("aria-expanded", "false");
  menu.classList.remove("open");
  if (refocus) more.focus();
}

function menuKeys(entry: Entry) {
  const { more, menu } = entry.parts;
  more.addEventListener("click", () => (menu.classList.contains("open") ? closeMenu(entry) : openMenu(entry)));
  entry.item.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && menu.classList.contains("open")) {
      event.preventDefault();
      closeMenu(entry, true);
    }
    if ((event.key === "ArrowDown" || event.key === "ArrowUp") && menu.contains(event.target as Node)) {
      event.preventDefault();
      const items = [...menu.querySelectorAll<HTMLButtonElement>("button:not([hidden])")];
      const at = items.indexOf(event.target as HTMLButtonElement) + (event.key === "ArrowDown" ? 1 : -1);
      items.at(at % items.length)?.focus();
    }
  });
  // Focus moving out of the actions (Tab) closes it; a click elsewhere too (below).
  const actions = menu.parentElement!;
  actions.addEventListener("focusout", (event) => {
    const to = event.relatedTarget as Node | null;
    if (to && !actions.contains(to)) closeMenu(entry);
  });
}

document.addEventListener("click", (event) => {
  for (const menu of document.querySelectorAll<HTMLElement>(".job .menu.open")) {
    const actions = menu.parentElement!;
    if (actions.contains(event.target as Node)) continue;
    menu.classList.remove("open");
    actions.querySelector(".more")?.setAttribute("aria-expanded", "false");
  }
});
