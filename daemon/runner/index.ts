export { CommandRunner, type CommandRunnerOptions } from "./command-runner.js";
export type { AbortReason, RunContext, Runner, RunOutcome } from "./runner.js";
