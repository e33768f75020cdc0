/**
 * Every stream, bucket, consumer and subject name agent-mesh uses on NATS, in one place.
 * Everything that spells a name (topology, stores, presence, the service, metrics, the CLI,
 * benchmarks, tests) imports it from here; deploy/nats/ mirrors the prefixes in its permissions.
 */

/** Work-queue stream of doorbells, one subject per task: `mesh.task.<pool>.<id>`. */
export const TASKS_STREAM = "MESH_TASKS";
export const TASK_SUBJECT_PREFIX = "mesh.task.";
export const TASKS_SUBJECTS = `${TASK_SUBJECT_PREFIX}>`;
/** A doorbell for task `id` in `pool`. One subject per task lets the sweeper see whether a task has one. */
export const taskSubject = (pool: string, id: string): string => `${TASK_SUBJECT_PREFIX}${pool}.${id}`;
/** Every doorbell of one pool (a pool consumer's filter). */
export const poolFilter = (pool: string): string => `${TASK_SUBJECT_PREFIX}${pool}.*`;
/** The durable pull consumer of one pool. */
export const poolConsumerName = (pool: string): string => `pool-${pool}`;

/**
 * Limits stream indexing the queued tasks parked because no live worker serves them (their
 * doorbell was acked, see queue/parked.ts): one message per task, `mesh.parked.<pool>.<id>`.
 */
export const PARKED_STREAM = "MESH_PARKED";
export const PARKED_SUBJECT_PREFIX = "mesh.parked.";
export const PARKED_SUBJECTS = `${PARKED_SUBJECT_PREFIX}>`;
/** The index entry of parked task `id` in `pool`. */
export const parkedSubject = (pool: string, id: string): string => `${PARKED_SUBJECT_PREFIX}${pool}.${id}`;
/** Every index entry of one pool. */
export const parkedPoolFilter = (pool: string): string => `${PARKED_SUBJECT_PREFIX}${pool}.*`;

/** Limits-retention stream of task state changes and agent events, replayable. */
export const EVENTS_STREAM = "MESH_EVENTS";
export const EVENTS_SUBJECTS = "mesh.events.>";
/** Events of one task: `<subject>.state` for state changes, `<subject>.run` for runner/agent events. */
export const taskEventSubject = (taskId: string): string => `mesh.events.task.${taskId}`;
/** The state-change events of every task. */
export const STATE_EVENTS_FILTER = `${taskEventSubject("*")}.state`;
/** The runner and agent events of every task (their output lines too). */
export const RUN_EVENTS_FILTER = `${taskEventSubject("*")}.run`;
export const workerEventSubject = (workerId: string): string => `mesh.events.worker.${workerId}`;

/** KV bucket of task records, the source of truth (key = task id). */
export const TASKS_BUCKET = "mesh-tasks";
/** KV bucket of plan records (key = plan id): a plan's tasks and what needs what. */
export const PLANS_BUCKET = "mesh-plans";
/** KV bucket of presence (key = worker id), with a TTL. */
export const WORKERS_BUCKET = "mesh-workers";
/** The stream behind a KV bucket. */
export const kvStream = (bucket: string): string => `KV_${bucket}`;
/** The subject prefix of a KV bucket's keys, ending in a dot: `$KV.<bucket>.`. */
export const kvSubjectPrefix = (bucket: string): string => `$KV.${bucket}.`;
/** The subject one KV key is written on. */
export const kvSubject = (bucket: string, key: string): string => `${kvSubjectPrefix(bucket)}${key}`;
export const TASKS_BUCKET_STREAM = kvStream(TASKS_BUCKET);
export const WORKERS_BUCKET_STREAM = kvStream(WORKERS_BUCKET);

/** Core NATS (no stream): a cancel request for a running task. */
export const cancelSubject = (taskId: string): string => `mesh.ctl.cancel.${taskId}`;
/** Core NATS (no stream): the lease beacon, each revision a task's owner holds. */
export const beaconSubject = (taskId: string): string => `mesh.lease.${taskId}`;

/** Every subject agent-mesh publishes or subscribes on outside JetStream's and KV's own. */
export const MESH_SUBJECTS = "mesh.>";

/** Object Store of git bundles (code going out, results coming home; see daemon/transfer/). */
export const BUNDLES_BUCKET = "mesh-bundles";
/** KV: per repo, which commits the mesh holds as the tip of which bundle (`<repo id>.<commit>`). */
export const BUNDLE_INDEX_BUCKET = "mesh-bundle-index";

/**
 * Events of one plan (early conflicts between its finished branches, a dependent whose needs
 * conflict), in MESH_EVENTS: `mesh.events.plan.<plan id>`.
 */
export const planEventSubject = (planId: string): string => `mesh.events.plan.${planId}`;
/** The events of every plan. */
export const PLAN_EVENTS_FILTER = planEventSubject("*");
/**
 * KV: each plan's finished branches and the conflicts found between them:
 * `<plan id>.branch.<task id>` and `<plan id>.conflict.<task a>.<task b>` (a < b).
 */
export const PLAN_BRANCHES_BUCKET = "mesh-plan-branches";
/**
 * KV: first-come leases on the files tasks without `owns` write (issue 14 §3), key
 * `<repo hash>.<path hash>`, value the holder (task, attempt, worker, at). See claim/file-leases.ts.
 */
export const FILE_LEASES_BUCKET = "mesh-file-leases";
/**
 * KV: mesh-wide quota slots (issue 15, daemon/quota/): one record per cap, `acct.<account>`,
 * `pool.<pool>`, `res.<resource>` (its holders), and `starts.<account>` (recent starts).
 */
export const SLOTS_BUCKET = "mesh-slots";
/** KV: each account's rate-limit state (issue 15 §3; written by the limits side), key = account. */
export const ACCOUNTS_BUCKET = "mesh-accounts";
/** Account state changes (a pause, a warning), in the events stream. */
export const accountEventSubject = (account: string): string => `mesh.events.account.${account}`;
