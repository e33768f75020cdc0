export { CommandRunner, type CommandRunnerOptions } from "./command-runner.js";
