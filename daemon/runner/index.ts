export { ClaudeRunner } from "./claude-runner.js";
export { CommandRunner, type CommandRunnerOptions } from "./command-runner.js";
export { NoopRunner } from "./noop-runner.js";
export {
  type AddTaskFn,
  FileLeasePorts,
  type FileLeasePortsOptions,
  leasePath,
  type PortUses,
} from "./lease-port.js";
export { delegationPrompt } from "./delegation-prompt.js";
export { type PlanOwners, type PlanOwnersDeps, planOwners } from "./plan-owners.js";
export { type OpenTaskPort, serveTaskPort, type TaskPortHandlers, type TaskPortOpener } from "./task-port.js";
