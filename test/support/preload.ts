// Loaded before every test file (bunfig.toml). Services built in tests log at
// LOG_LEVEL (default "silent" here, so test output stays readable); set
// LOG_LEVEL=debug to see their JSON lines while debugging a test.
process.env.LOG_LEVEL ??= "silent";

// Many tests start real processes and ffmpeg. Neither bunfig's [test] timeout nor this
// setDefaultTimeout reaches every file in Bun 1.4.5 (a later file's tests got the 5 s
// default), so `bun run test` also passes --timeout 60000; this covers a bare `bun test`.
import { afterAll, setDefaultTimeout } from "bun:test";
import { stopShared } from "./shared.ts";

setDefaultTimeout(60_000);

// What test files share (test/support/shared.ts, e.g. the fault tests' running system)
// stops once, after the last test of the run.
afterAll(stopShared, { timeout: 60_000 });
