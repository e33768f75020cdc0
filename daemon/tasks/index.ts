/** Public surface of the tasks folder: specs, records, events, policy, and their store on NATS. */
export { EventPublisher } from "./event-publisher.js";
export { type RunnerEvent, type StateEvent, stateEventAttempt, type TaskEvent } from "./events.js";
export * from "./machine/index.js";
export { checkBatchPolicy, checkTaskPolicy, type TaskPolicy } from "./policy.js";
export {
  type AttemptInfo,
  type AttemptOutcome,
  isTerminal,
  newTaskRecord,
  rateLimitedAttempts,
  recordProblem,
  type ResultBundle,
  TASK_STATES,
  type TaskRecord,
  type TaskResultInfo,
  type TaskState,
  type UnreadableRecord,
  type VersionedRecord,
} from "./record.js";
export {
  ALLOWED_PROTOCOLS,
  parseRepo,
  type RepoSource,
  redactUrlCredentials,
  validateRef,
} from "./repo-syntax.js";
export {
  checkStoredSpec,
  formatTimerLimit,
  ID_RE,
  LABEL_KEY_RE,
  MAX_PROMPT_BYTES,
  MAX_TIMER_MS,
  NAME_RE,
  newTaskId,
  PERMISSION_ORDER,
  parseTaskDocument,
  parseTaskSpecs,
  type TaskSpec,
  type TaskSpecInput,
  taskSpecSchema,
  validateTaskBatch,
  validateTaskSpec,
} from "./spec.js";
export { TaskStore } from "./store.js";
export { DEFAULT_TASK_ENV_ALLOW, envPatternProblem } from "./task-env.js";
