// The page's entry (web/index.html loads it): what comes and goes with a session, log out,
// and the start: an emailed link (/verify, /reset), else the session kept in this browser.
import { confirmAddress, openReset, takeEmailedLink } from "./account-links.ts";
import { closeAccountDialog } from "./account-settings.ts";
import { showAuthView } from "./auth-views.ts";
import { closeDeveloperDialog } from "./developer.ts";
import { jobActions } from "./job-actions.ts";
import { showLinkedJob } from "./job-link.ts";
import { clearJobs, loadJobs, setJobActions } from "./jobs.ts";
import { busy } from "./page.ts";
import { endSession, logOut, onSession, startSession } from "./session.ts";
import { loadSession } from "./session-store.ts";
import { unstageAll } from "./staging.ts";
import { upload } from "./upload.ts";
import { refreshUsage, showUsage } from "./usage.ts";
import { showVerifyBanner } from "./verify-banner.ts";

setJobActions(jobActions);
onSession({
  started: () => {
    void loadJobs().then(showLinkedJob);
    refreshUsage(0);
    showVerifyBanner();
  },
  renewed: showVerifyBanner,
  ended: () => {
    clearJobs();
    showUsage(null);
    upload.cancelAll();
    unstageAll();
    closeAccountDialog();
    closeDeveloperDialog();
    showVerifyBanner();
    showAuthView("login");
  },
});

const logoutButton = document.getElementById("logout") as HTMLButtonElement;
logoutButton.addEventListener("click", async () => {
  busy(logoutButton, "Logging out…");
  await logOut();
  busy(logoutButton, null);
});

// ── start ─────────────────────────────────────────────────────────────────────
const link = takeEmailedLink();
const saved = loadSession();
if (link?.kind === "reset") {
  endSession(null, "info", { forget: false }); // the reset view, whoever is logged in here
  openReset(link.token);
} else {
  if (saved) startSession(saved, { save: false });
  else endSession(null);
  if (link?.kind === "verify") void confirmAddress(link.token);
}
document.body.classList.add("ready");
