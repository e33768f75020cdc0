/** Public surface of the daemon folder. Other folders import from here only. */
export type { MeshApi, MeshEvent, SubmitResult, TaskFilter, TaskList, TaskView } from "./api/index.js";
export {
  type Overview,
  type OverviewTask,
  overview,
  STATUS_KINDS,
  type StatusKind,
  statusRank,
  type TaskStatus,
  taskStatus,
} from "./api/index.js";
export type { MeshObserver, RunContext, Runner, RunOutcome } from "./claim/index.js";
export {
  compileConfig,
  type DaemonConfig,
  type DaemonOptions,
  daemonOptionsSchema,
  defaultStateDir,
  readConfigFile,
} from "./config.js";
export { Daemon, type DaemonDeps, type DaemonState } from "./daemon.js";
export { errorMessage, isMeshError, MeshError, type MeshErrorCode } from "./errors.js";
export { DEFAULT_SUBMIT_MAX_BYTES } from "./limits.js";
export { createLogger, type Logger } from "./log.js";
export {
  JOIN_CA_FILE,
  JOIN_FILE,
  JOIN_LEAF_PASSWORD_FILE,
  JOIN_NKEY_FILE,
  type JoinedFiles,
  type JoinedHub,
  joinDir,
  joinedHubSchema,
  joinedNatsOptions,
  JsPublisher,
  readJoinedHub,
} from "./nats/index.js";
export {
  BUNDLE_INDEX_BUCKET,
  beaconSubject,
  cancelSubject,
  connectNats,
  DAEMON_PERMISSIONS,
  EVENTS_STREAM,
  kvStream,
  kvSubject,
  LOCAL_NKEY_FILE,
  MONITOR_PERMISSIONS,
  poolConsumerName,
  poolFilter,
  renderPermissions,
  STATE_EVENTS_FILTER,
  TASKS_BUCKET,
  TASKS_STREAM,
  taskEventSubject,
  taskSubject,
  useLocalMeshCredentials,
  WORKERS_BUCKET,
} from "./nats/index.js";
export {
  checkPlanDefaults,
  newPlanId,
  type PlanSpec,
  parsePlanDocument,
  parsePlanSubmitDocument,
  validatePlanSubmit,
} from "./plans/index.js";
export type { DaemonPlugin, PluginContext } from "./plugin.js";
export { listWorkers, Presence, type WorkerInfo } from "./registry/index.js";
export { ClaudeRunner, CommandRunner } from "./runner/index.js";
export { startDaemon } from "./start.js";
export type { RunnerEvent, TaskEvent } from "./tasks/index.js";
export {
  type AttemptInfo,
  isTerminal,
  MAX_PROMPT_BYTES,
  newTaskId,
  parseTaskDocument,
  parseTaskSpecs,
  TASK_STATES,
  type TaskRecord,
  type TaskResultInfo,
  type TaskSpec,
  type TaskSpecInput,
  type TaskState,
  taskSpecSchema,
  validateTaskBatch,
  validateTaskSpec,
} from "./tasks/index.js";
export { formatBytes, parseBytes } from "./util/index.js";
export { VERSION } from "./version.js";
export { BundleStore, DEFAULT_CHUNK_BYTES, ensureCommit, indexKey, shipRepo } from "./transfer/index.js";
export { Git } from "./workspace/index.js";
// For bench/records.ts: the task bucket filled with records as the state machine writes them,
// their doorbells as submit rings them, and a sweeper pass over them.
export { ensureTopology, markParked, ringDoorbell, Sweeper, type Topology } from "./queue/index.js";
export {
  cancel,
  claim,
  expectState,
  settle,
  start,
  submit,
  TaskStore,
  TRANSITIONS,
} from "./tasks/index.js";
