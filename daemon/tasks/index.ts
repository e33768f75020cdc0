/** Public surface of the tasks folder: specs, records, events, policy, and their store on NATS. */
export { EventPublisher } from "./event-publisher.js";
export { type RunnerEvent, type StateEvent, stateEventAttempt, type TaskEvent } from "./events.js";
export {
  ANY_CHAR,
  type CharSet,
  charSetHas,
  type GlobAlternative,
  type GlobSegment,
  type GlobToken,
  MAX_GLOB_EXPANSION,
  MAX_GLOB_LENGTH,
  MAX_OWNS,
  normaliseGlob,
  parseGlob,
} from "./glob.js";
export * from "./machine/index.js";
export { checkBatchPolicy, checkTaskPolicy, type TaskPolicy } from "./policy.js";
export {
  type AttemptInfo,
  type AttemptOutcome,
  isTerminal,
  newTaskRecord,
  type ResultBundle,
  type ParkedInfo,
  rateLimitedAttempts,
  recordProblem,
  TASK_STATES,
  type TaskRecord,
  type TaskResultInfo,
  type TaskState,
  type UnreadableRecord,
  type VersionedRecord,
} from "./record.js";
export {
  ALLOWED_PROTOCOLS,
  hasControlChars,
  parseRepo,
  type RepoSource,
  redactUrlCredentials,
  validateRef,
} from "./repo-syntax.js";
export {
  checkStoredSpec,
  describePosition,
  formatTimerLimit,
  ID_RE,
  LABEL_KEY_RE,
  MAX_BATCH,
  MAX_PLAN_TASKS,
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
