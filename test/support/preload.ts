// Loaded before every test file (bunfig.toml). Services built in tests log at
// LOG_LEVEL (default "silent" here, so test output stays readable); set
// LOG_LEVEL=debug to see their JSON lines while debugging a test.
process.env.LOG_LEVEL ??= "silent";

// Many tests start real processes and ffmpeg; bunfig's [test] timeout is not applied
// to every file in Bun 1.4, so set the default here for all of them.
import { setDefaultTimeout } from "bun:test";

setDefaultTimeout(60_000);
