// The page's entry (web/index.html loads it): what comes and goes with a session, log out, and the start.
import { session } from "./api.ts";
import { showAuthView } from "./auth-views.ts";
import { jobActions } from "./job-actions.ts";
import { showLinkedJob } from "./job-link.ts";
import { clearJobs, loadJobs, setJobActions } from "./jobs.ts";
import { $ } from "./page.ts";
import { endSession, onSession, startSession } from "./session.ts";
import { unstageAll } from "./staging.ts";
import { upload } from "./upload.ts";
import { refreshUsage, showUsage } from "./usage.ts";

setJobActions(jobActions);
onSession({
  started: () => {
    void loadJobs().then(showLinkedJob);
    refreshUsage(0);
  },
  ended: () => {
    clearJobs();
    showUsage(null);
    upload.cancelAll();
    unstageAll();
    showAuthView("login");
  },
});

$("logout").addEventListener("click", () => endSession({ title: "You have logged out." }));

// ── start ─────────────────────────────────────────────────────────────────────
const saved = session.load();
if (saved) startSession(saved);
else endSession(null);
document.body.classList.add("ready");
