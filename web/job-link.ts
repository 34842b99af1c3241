// A link to one job, `#/jobs/<id>` (the ready email's link to the page: the gateway serves
// the page only at `/`). Once the list is loaded the job is shown, fetched when it is older
// than the first page, then scrolled to and focused. It waits through a login.
import { getJob } from "./api.ts";
import { describeError } from "./errors.ts";
import { entryOf, follow, render } from "./jobs.ts";
import { say } from "./page.ts";
import { current, sessionLost } from "./session.ts";

export async function showLinkedJob() {
  const id = /^#\/jobs\/([0-9a-f]{24})$/.exec(location.hash)?.[1];
  const token = current?.token;
  if (!id || !token) return;
  let entry = entryOf(id);
  if (!entry) {
    try {
      entry = render(await getJob(token, id), "top");
      follow();
    } catch (error) {
      if (!sessionLost(error)) say(describeError(error, "job"), "error");
      return;
    }
  }
  for (const other of document.querySelectorAll(".job.linked")) other.classList.remove("linked");
  entry.item.classList.add("linked");
  entry.item.scrollIntoView({ block: "center" });
  const heading = entry.item.querySelector("h3")!;
  heading.tabIndex = -1;
  heading.focus({ preventScroll: true });
}

window.addEventListener("hashchange", () => void showLinkedJob());
