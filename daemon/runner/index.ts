export { CommandRunner, type CommandRunnerOptions } from "./command-runner.js";
export type { AbortReason, RunContext, Runner, RunnerEvent, RunOutcome } from "./runner.js";
