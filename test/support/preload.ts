// Loaded before every test file (bunfig.toml). Services built in tests log at
// LOG_LEVEL (default "silent" here, so test output stays readable); set
// LOG_LEVEL=debug to see their JSON lines while debugging a test.
process.env.LOG_LEVEL ??= "silent";
