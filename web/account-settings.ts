// "Account" in the header: a dialog (a modal <dialog>: Escape closes it, focus stays in it)
// to change the password and to delete the account. Deleting warns what goes with it and
// asks for the password; then the page is back at the login view, saying so.

import { changePassword, deleteAccount } from "./account-api.ts";
import { ApiError } from "./api.ts";
import { resetToggles } from "./auth-views.ts";
import { closeOnBackdrop } from "./dom.ts";
import { describeError, type Message, sentence } from "./errors.ts";
import { $, busy, show, view } from "./page.ts";
import { current, endSession, sessionLost } from "./session.ts";

const dialog = view.accountDialog;
const passwordForm = $<HTMLFormElement>("password-form");
const deleteForm = $<HTMLFormElement>("delete-form");
const passwordMessage = $("password-message");
const deleteMessage = $("delete-message");
const input = (form: HTMLFormElement, name: string) => form.elements.namedItem(name) as HTMLInputElement;
const submitOf = (form: HTMLFormElement) => form.querySelector<HTMLButtonElement>("button[type=submit]")!;

function open() {
  if (!current) return;
  $("account-email").textContent = current.email;
  for (const form of [passwordForm, deleteForm]) form.reset();
  input(passwordForm, "username").value = current.email; // for a password manager: whose password changes
  resetToggles(dialog);
  show(passwordMessage, null);
  show(deleteMessage, null);
  dialog.showModal();
}

/** Closes the dialog (the session ended, in this tab or another). */
export function closeAccountDialog() {
  if (dialog.open) dialog.close();
}

/** 403 names the password that is not right; 422 the rule a new one breaks. */
function refused(error: unknown, which: string): Message {
  if (error instanceof ApiError && error.status === 403) return { title: `${which} isn't right.` };
  if (error instanceof ApiError && error.status === 422) {
    const rules = error.problem.errors?.map((issue) => issue.message).join("; ");
    return { title: "Please check the new password.", detail: sentence(rules) };
  }
  return describeError(error, "login");
}

async function savePassword(event: SubmitEvent) {
  event.preventDefault();
  const mine = current;
  if (!mine) return;
  const button = submitOf(passwordForm);
  const [old, next] = [input(passwordForm, "currentPassword"), input(passwordForm, "newPassword")];
  busy(button, "Changing…");
  show(passwordMessage, null);
  try {
    await changePassword(mine.token, old.value, next.value);
    passwordForm.reset();
    resetToggles(passwordForm);
    show(passwordMessage, {
      title: "Your password is changed.",
      detail: "Your other devices are logged out; this one stays logged in.",
    });
  } catch (error) {
    if (sessionLost(error)) return;
    show(passwordMessage, refused(error, "Your current password"), "error");
    (error instanceof ApiError && error.status === 422 ? next : old).focus();
  } finally {
    busy(button, null);
  }
}

async function deleteEverything(event: SubmitEvent) {
  event.preventDefault();
  const mine = current;
  if (!mine) return;
  const button = submitOf(deleteForm);
  const password = input(deleteForm, "password");
  busy(button, "Deleting…");
  show(deleteMessage, null);
  try {
    await deleteAccount(mine.token, password.value);
    closeAccountDialog();
    endSession({
      title: "Your account is deleted.",
      detail: "Everything in it is being removed. Thank you for using m3dio.",
    });
  } catch (error) {
    if (sessionLost(error)) return;
    show(deleteMessage, refused(error, "That password"), "error");
    password.focus();
  } finally {
    busy(button, null);
  }
}

view.accountOpen.addEventListener("click", open);
$("account-close").addEventListener("click", closeAccountDialog);
passwordForm.addEventListener("submit", (event) => void savePassword(event as SubmitEvent));
deleteForm.addEventListener("submit", (event) => void deleteEverything(event as SubmitEvent));
closeOnBackdrop(dialog);
