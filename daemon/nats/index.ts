/** Public surface of the nats folder: the connection, every NATS name, JetStream errors and publisher, KV reads, permissions. */
export { connectNats } from "./connect.js";
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
} from "./joined.js";
export {
  isAlreadyExists,
  isConsumerNotFound,
  isInsufficientResources,
  isJetStreamUnavailable,
  isNoMessageFound,
  isStoreFull,
  isStreamNotFound,
  isWrongLastSequence,
} from "./js-errors.js";
export { type JsPublish, JsPublisher } from "./js-publisher.js";
export { type KvChanges, kvChangedKeys, kvLastSeq } from "./kv-changes.js";
export { kvKeys } from "./kv-keys.js";
export { scanKv } from "./kv-scan.js";
export { type KvTailRead, readKvTail } from "./kv-tail.js";
export { LOCAL_NKEY_FILE, useLocalMeshCredentials } from "./local-creds.js";
export {
  ACCOUNTS_BUCKET,
  accountEventSubject,
  BUNDLE_INDEX_BUCKET,
  BUNDLES_BUCKET,
  beaconSubject,
  cancelSubject,
  EVENTS_STREAM,
  EVENTS_SUBJECTS,
  FILE_LEASES_BUCKET,
  kvStream,
  kvSubject,
  kvSubjectPrefix,
  PARKED_STREAM,
  PARKED_SUBJECT_PREFIX,
  PARKED_SUBJECTS,
  PLAN_BRANCHES_BUCKET,
  PLAN_EVENTS_FILTER,
  PLANS_BUCKET,
  parkedPoolFilter,
  parkedSubject,
  planEventSubject,
  poolConsumerName,
  poolFilter,
  RUN_EVENTS_FILTER,
  SLOTS_BUCKET,
  STATE_EVENTS_FILTER,
  TASK_SUBJECT_PREFIX,
  TASKS_BUCKET,
  TASKS_BUCKET_STREAM,
  TASKS_STREAM,
  TASKS_SUBJECTS,
  taskEventSubject,
  taskSubject,
  WORKERS_BUCKET,
  WORKERS_BUCKET_STREAM,
} from "./names.js";
export { DAEMON_PERMISSIONS, MONITOR_PERMISSIONS, renderPermissions } from "./permissions.js";
export { natsOptionsSchema } from "./settings.js";
