// "Developer" in the header: a dialog (a modal <dialog>: Escape or the backdrop closes it,
// focus stays in it) for what programs use: API keys (keys-panel.ts) and webhooks with
// their deliveries (webhooks-panel.ts). Both lists are read each time it opens; a key or a
// secret shown once is gone from the page when it closes.
import { closeOnBackdrop } from "./dom.ts";
import { clearKeys, loadKeys } from "./keys-panel.ts";
import { $ } from "./page.ts";
import { current } from "./session.ts";
import { clearWebhooks, loadWebhooks } from "./webhooks-panel.ts";

const dialog = $<HTMLDialogElement>("developer-dialog");

function open() {
  if (!current) return;
  dialog.showModal();
  void loadKeys();
  void loadWebhooks();
}

/** Closes the dialog (the session ended, in this tab or another). */
export function closeDeveloperDialog() {
  if (dialog.open) dialog.close();
}

$("developer-open").addEventListener("click", open);
$("developer-close").addEventListener("click", closeDeveloperDialog);
dialog.addEventListener("close", () => {
  clearKeys();
  clearWebhooks();
});
closeOnBackdrop(dialog);
