/** Public surface of the daemon folder. Other folders import from here only. */
export type { MeshApi, MeshEvent, SubmitResult, TaskFilter, TaskList, TaskView } from "./api/mesh-api.js";
export {
  compileConfig,
  type DaemonConfig,
  type DaemonOptions,
  defaultStateDir,
  readConfigFile,
} from "./config.js";
export { Daemon, type DaemonDeps, type DaemonPlugin, type DaemonState } from "./daemon.js";
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
  readJoinedHub,
} from "./nats/joined.js";
export { LOCAL_NKEY_FILE, useLocalMeshCredentials } from "./nats/local-creds.js";
export { DAEMON_PERMISSIONS, MONITOR_PERMISSIONS, renderPermissions } from "./nats/permissions.js";
export type { WorkerInfo } from "./registry/worker-info.js";
export {
  CommandRunner,
  type RunContext,
  type Runner,
  type RunnerEvent,
  type RunOutcome,
} from "./runner/index.js";
export { startDaemon } from "./start.js";
export type { TaskEvent } from "./tasks/events.js";
export {
  type AttemptInfo,
  isTerminal,
  TASK_STATES,
  type TaskRecord,
  type TaskResultInfo,
  type TaskState,
} from "./tasks/record.js";
export {
  MAX_PROMPT_BYTES,
  newTaskId,
  parseTaskDocument,
  parseTaskSpecs,
  type TaskSpec,
  type TaskSpecInput,
  validateTaskBatch,
  validateTaskSpec,
} from "./tasks/spec.js";
export { formatBytes, parseBytes } from "./util/bytes.js";
export { VERSION } from "./version.js";
