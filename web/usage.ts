// The account's quotas and what is used of them, above the drop zone: "1.2 MB of 5.0 GB
// used · 1 of 5 conversions active". Read again (GET /account/usage) when a session
// starts, after a video or link is sent or refused, when a job finishes and after a delete.
import { getUsage, type Usage } from "./api.ts";
import { sizeText } from "./format.ts";
import { view } from "./page.ts";
import { current, sessionLost } from "./session.ts";

let timer: ReturnType<typeof setTimeout> | undefined;

/** Reads the usage again shortly; several asks close together make one request. */
export function refreshUsage(delayMs = 150) {
  clearTimeout(timer);
  timer = setTimeout(() => void load(), delayMs);
}

async function load() {
  const mine = current;
  if (!mine) return;
  try {
    const usage = await getUsage(mine.token);
    if (current === mine) showUsage(usage);
  } catch (error) {
    sessionLost(error); // otherwise the line keeps what it said: a hint, never in the way
  }
}

/** Shows `usage`, or hides the line (null: no session). */
export function showUsage(usage: Usage | null) {
  clearTimeout(timer);
  view.usage.hidden = !usage;
  if (!usage) return;
  const { activeJobs, storedBytes, limits } = usage;
  const plural = limits.activeJobs === 1 ? "" : "s";
  view.usageText.textContent =
    `${sizeText(storedBytes)} of ${sizeText(limits.storedBytes)} used · ` +
    `${activeJobs} of ${limits.activeJobs} conversion${plural} active`;
  view.usageMeter.value = Math.min(1, storedBytes / limits.storedBytes);
  view.usage.classList.toggle("full", storedBytes >= limits.storedBytes || activeJobs >= limits.activeJobs);
}
