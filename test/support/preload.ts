// Loaded before every test file (bunfig.toml). Services built in tests log at
// LOG_LEVEL (default "silent" here, so test output stays readable); set
// LOG_LEVEL=debug to see their JSON lines while debugging a test.
process.env.LOG_LEVEL ??= "silent";

// Many tests start real processes and ffmpeg; bunfig's [test] timeout is not applied
// to every file in Bun 1.4, so set the default here for all of them.
import { afterAll, setDefaultTimeout } from "bun:test";
import { stopShared } from "./shared.ts";

setDefaultTimeout(60_000);

// What test files share (test/support/shared.ts, e.g. the fault tests' running system)
// stops once, after the last test of the run.
afterAll(stopShared, { timeout: 60_000 });
