// The page's elements by id and the DOM helpers every part uses; plain DOM, every text set with textContent.
import { h } from "./dom.ts";
import type { Message } from "./errors.ts";

export { h };

export const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
export const view = {
  auth: $("auth"),
  loginView: $("login-view"),
  registerView: $("register-view"),
  forgotView: $("forgot-view"),
  resetView: $("reset-view"),
  loginForm: $<HTMLFormElement>("login-form"),
  registerForm: $<HTMLFormElement>("register-form"),
  forgotForm: $<HTMLFormElement>("forgot-form"),
  resetForm: $<HTMLFormElement>("reset-form"),
  remember: $<HTMLInputElement>("remember"),
  authStatus: $("auth-status"),
  loginMessage: $("login-message"),
  app: $("app-view"),
  account: $("account"),
  who: $("who"),
  verifyBanner: $("verify-banner"),
  verifyEmail: $("verify-email"),
  verifyResend: $<HTMLButtonElement>("verify-resend"),
  verifyResult: $("verify-result"),
  accountOpen: $<HTMLButtonElement>("account-open"),
  accountDialog: $<HTMLDialogElement>("account-dialog"),
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
  staged: $("staged"),
  stagedTitle: $("staged-title"),
  stagedList: $<HTMLUListElement>("staged-list"),
  send: $<HTMLButtonElement>("send"),
  unstage: $<HTMLButtonElement>("unstage"),
  presets: $<HTMLFieldSetElement>("presets"),
  advanced: $<HTMLDetailsElement>("advanced"),
  advancedFields: $("advanced-fields"),
  linkForm: $<HTMLFormElement>("link-form"),
  link: $<HTMLInputElement>("link"),
  jobs: $<HTMLUListElement>("jobs"),
  empty: $("jobs-empty"),
  older: $<HTMLButtonElement>("older"),
  news: $("job-news"),
};

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
