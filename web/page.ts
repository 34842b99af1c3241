// The page's elements by id and the DOM helpers every part uses; plain DOM, every text set with textContent.
import type { Message } from "./api.ts";

export const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
export const view = {
  login: $("login-view"),
  app: $("app-view"),
  account: $("account"),
  who: $("who"),
  loginForm: $<HTMLFormElement>("login-form"),
  email: $<HTMLInputElement>("email"),
  password: $<HTMLInputElement>("password"),
  loginMessage: $("login-message"),
  appMessage: $("app-message"),
  appTitle: $("app-title"),
  usage: $("usage"),
  usageText: $("usage-text"),
  usageMeter: $<HTMLMeterElement>("usage-meter"),
  drop: $("drop"),
  file: $<HTMLInputElement>("file"),
  pick: $<HTMLButtonElement>("pick"),
  upload: $("upload"),
  uploadLabel: $("upload-label"),
  uploadBar: $<HTMLProgressElement>("upload-bar"),
  uploadCancel: $<HTMLButtonElement>("upload-cancel"),
  linkForm: $<HTMLFormElement>("link-form"),
  link: $<HTMLInputElement>("link"),
  jobs: $<HTMLUListElement>("jobs"),
  empty: $("jobs-empty"),
  more: $<HTMLButtonElement>("more"),
  news: $("job-news"),
};

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> & { class?: string } = {},
  ...children: (Node | string)[]
) {
  const { class: className, ...rest } = props;
  const element = Object.assign(document.createElement(tag), rest);
  if (className) element.className = className;
  element.append(...children);
  return element;
}

export function show(target: HTMLElement, message: Message | null, kind: "info" | "error" = "info") {
  target.replaceChildren();
  if (!message) return;
  const box = h(
    "div",
    { class: `message ${kind}` },
    h("strong", {}, message.title),
    ...(message.detail ? [" ", h("span", {}, message.detail)] : []),
  );
  if (kind === "error") box.setAttribute("role", "alert");
  target.append(box);
}
export const say = (message: Message | null, kind: "info" | "error" = "info") => show(view.appMessage, message, kind);

export function busy(button: HTMLButtonElement, label: string | null) {
  if (label !== null) {
    button.dataset.label ??= button.firstChild!.textContent ?? "";
    button.firstChild!.textContent = label;
  } else if (button.dataset.label !== undefined) {
    button.firstChild!.textContent = button.dataset.label;
    delete button.dataset.label;
  }
  button.disabled = label !== null;
}
