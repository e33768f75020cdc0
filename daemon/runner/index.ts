export { ClaudeRunner } from "./claude-runner.js";
export { CommandRunner, type CommandRunnerOptions } from "./command-runner.js";
export { NoopRunner } from "./noop-runner.js";
