/**
 * The daemon folder's light public surface: pure modules with no NATS, pino or server imports,
 * for the CLI, whose start-up time users feel on every command. Everything here is also
 * exported from index.ts.
 */

export { type Overview, type OverviewTask, overview } from "./api/overview.js";
export {
  STATUS_KINDS,
  type StatusKind,
  statusRank,
  type TaskStatus,
} from "./api/status.js";
export { errorMessage, isMeshError, MeshError, type MeshErrorCode } from "./errors.js";
export { DEFAULT_SUBMIT_MAX_BYTES } from "./limits.js";
export {
  beaconSubject,
  cancelSubject,
  EVENTS_STREAM,
  kvStream,
  kvSubject,
  poolConsumerName,
  poolFilter,
  STATE_EVENTS_FILTER,
  TASKS_BUCKET,
  TASKS_STREAM,
  taskEventSubject,
  taskSubject,
  WORKERS_BUCKET,
} from "./nats/names.js";
export {
  MAX_PROMPT_BYTES,
  MAX_TIMER_MS,
  parseTaskDocument,
  type TaskSpec,
  validateTaskBatch,
} from "./tasks/spec.js";
export { localNkeyFor } from "./nats/local-creds.js";
export { formatBytes } from "./util/bytes.js";
export { parseDuration } from "./util/duration.js";
export { parseLabels, parseList, parseWholeNumber } from "./util/flags.js";
export { VERSION } from "./version.js";
