/**
 * The JetStream objects agent-mesh uses, created idempotently:
 * - stream MESH_TASKS (work queue, subjects mesh.task.<pool>): doorbells, one per enqueue;
 * - one durable pull consumer per pool with a disjoint filter;
 * - stream MESH_PARKED (limits, one message per subject): the index of parked tasks (parked.ts);
 * - stream MESH_EVENTS (limits): task state changes and agent events, replayable;
 * - KV mesh-tasks (task records, the source of truth) and mesh-workers (presence, TTL).
 *
 * Growth is bounded (README "Limits"): MESH_EVENTS keeps at most `eventsMaxBytes` and
 * `eventsMaxAgeMs`, dropping its oldest events first (events are best effort; the record is
 * the truth). mesh-tasks holds at most `tasksMaxBytes` and never drops a record: a write that
 * does not fit is refused (discard "new"), and submits stop at 90% (see capacity.ts). Limits
 * given here are applied to existing streams too, except that the bucket's is never lowered
 * below what its records use (JetStream would delete records to fit).
 */
import {
  AckPolicy,
  type Consumer,
  DeliverPolicy,
  DiscardPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { errorMessage, MeshError } from "../errors.js";
import type { Logger } from "../log.js";
import {
  EVENTS_STREAM,
  EVENTS_SUBJECTS,
  isAlreadyExists,
  isConsumerNotFound,
  isInsufficientResources,
  isStreamNotFound,
  JsPublisher,
  kvSubjectPrefix,
  PARKED_STREAM,
  PARKED_SUBJECTS,
  poolConsumerName,
  poolFilter,
  TASKS_BUCKET,
  TASKS_BUCKET_STREAM,
  TASKS_STREAM,
  TASKS_SUBJECTS,
  WORKERS_BUCKET,
  WORKERS_BUCKET_STREAM,
} from "../nats/index.js";
import { formatBytes } from "../util/index.js";
import { BucketCapacity, SOFT_RATIO } from "./capacity.js";

/** Used when a limit is not given; an existing stream then keeps the limits it has. */
export const DEFAULT_EVENTS_MAX_BYTES = 1024 ** 3;
export const DEFAULT_TASKS_MAX_BYTES = 1024 ** 3;
const DEFAULT_EVENTS_MAX_AGE_MS = 7 * 86_400_000;

export interface TopologyOptions {
  replicas: number;
  leaseMs: number;
  presenceTtlMs: number;
  /** JetStream domain (leaf-node set-ups). */
  domain?: string;
  /** MESH_EVENTS limits (limits.eventsMaxBytes, limits.eventsMaxAge); applied to an existing stream too. */
  eventsMaxBytes?: number;
  eventsMaxAgeMs?: number;
  /** mesh-tasks byte limit (limits.tasksMaxBytes); applied to an existing bucket where safe. */
  tasksMaxBytes?: number;
  /** JetStream's duplicate window for enqueues (default 2 min). */
  duplicateWindowMs?: number;
  /** Where limit changes that were skipped are reported. */
  log?: Logger;
}

export interface Topology {
  js: JetStreamClient;
  /** Lighter JetStream publishes for the hot path (doorbells, compare-and-set writes). */
  publisher: JsPublisher;
  jsm: JetStreamManager;
  tasks: KV;
  workers: KV;
  consumer(pool: string): Promise<Consumer>;
  /** Forgets that the pool's consumer was ensured (it was deleted): the next consumer() makes it. */
  forgetConsumer(pool: string): void;
  /** The JetStream API prefix (`$JS.API`, or `$JS.<domain>.API` behind a leaf node). */
  apiPrefix: string;
  /** Where compare-and-set writes of task records go, `<prefix>.<task id>` (domain-aware, as the KV client does). */
  tasksPutPrefix: string;
  /** Admission of new records to the tasks bucket (refuses submits near its byte limit). */
  tasksCapacity: BucketCapacity;
}

export async function ensureTopology(nc: NatsConnection, opts: TopologyOptions): Promise<Topology> {
  const jsOpts = opts.domain ? { domain: opts.domain } : {};
  const jsm = await jetstreamManager(nc, jsOpts);
  const js = jetstream(nc, jsOpts);

  await ensureStream(jsm, {
    name: TASKS_STREAM,
    subjects: [TASKS_SUBJECTS],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas: opts.replicas,
    duplicate_window: (opts.duplicateWindowMs ?? 120_000) * 1_000_000,
  });
  // One message per parked task (a new one replaces the old): bounded by the queued tasks.
  await ensureStream(jsm, {
    name: PARKED_STREAM,
    subjects: [PARKED_SUBJECTS],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: opts.replicas,
    max_msgs_per_subject: 1,
    discard: DiscardPolicy.Old,
  });
  await ensureStream(jsm, {
    name: EVENTS_STREAM,
    subjects: [EVENTS_SUBJECTS],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: opts.replicas,
    max_age: (opts.eventsMaxAgeMs ?? DEFAULT_EVENTS_MAX_AGE_MS) * 1_000_000,
    max_bytes: opts.eventsMaxBytes ?? DEFAULT_EVENTS_MAX_BYTES,
    discard: DiscardPolicy.Old,
    max_msgs_per_subject: 100_000,
  }).catch((err) => {
    throw limitError(err, EVENTS_STREAM, "limits.eventsMaxBytes");
  });
  await applyEventLimits(jsm, opts);

  const kvm = new Kvm(js);
  const tasks = await kvm
    .create(TASKS_BUCKET, {
      history: 1,
      replicas: opts.replicas,
      max_bytes: opts.tasksMaxBytes ?? DEFAULT_TASKS_MAX_BYTES,
    })
    .catch((err) => {
      throw limitError(err, TASKS_BUCKET, "limits.tasksMaxBytes");
    });
  await applyTaskLimits(jsm, opts);
  const workers = await kvm.create(WORKERS_BUCKET, {
    history: 1,
    replicas: opts.replicas,
    ttl: opts.presenceTtlMs,
  });
  await raiseWorkersTtl(jsm, opts);

  const ensured = new Map<string, Promise<Consumer>>();
  const consumer = (pool: string): Promise<Consumer> => {
    let p = ensured.get(pool);
    if (!p) {
      p = ensureConsumer(jsm, js, pool, opts.leaseMs);
      ensured.set(pool, p);
      p.catch(() => ensured.delete(pool));
    }
    return p;
  };
  const apiPrefix = opts.domain ? `$JS.${opts.domain}.API` : "$JS.API";
  return {
    js,
    jsm,
    tasks,
    workers,
    consumer,
    forgetConsumer: (pool) => void ensured.delete(pool),
    apiPrefix,
    tasksPutPrefix: `${opts.domain ? `${apiPrefix}.` : ""}${kvSubjectPrefix(TASKS_BUCKET).slice(0, -1)}`,
    publisher: new JsPublisher(nc),
    tasksCapacity: new BucketCapacity(jsm, TASKS_BUCKET_STREAM, "limits.tasksMaxBytes"),
  };
}

/** JetStream reserves a stream's max_bytes up front: say which limit to lower when it cannot. */
function limitError(err: unknown, what: string, field: string): unknown {
  if (!isInsufficientResources(err)) return err;
  return new MeshError(
    "RESOURCE_EXHAUSTED",
    `cannot create ${what}: NATS has not enough JetStream storage for its byte limit (${errorMessage(err)}); lower ${field} in meshd's config, or give JetStream more storage (max_file_store)`,
    { field, cause: err },
  );
}

/** Events are best effort: an existing stream takes the configured limits, even lower ones. */
async function applyEventLimits(jsm: JetStreamManager, opts: TopologyOptions): Promise<void> {
  if (opts.eventsMaxBytes === undefined && opts.eventsMaxAgeMs === undefined) return;
  const si = await jsm.streams.info(EVENTS_STREAM);
  const want = {
    max_bytes: opts.eventsMaxBytes ?? si.config.max_bytes,
    max_age: opts.eventsMaxAgeMs !== undefined ? opts.eventsMaxAgeMs * 1_000_000 : si.config.max_age,
  };
  if (si.config.max_bytes === want.max_bytes && si.config.max_age === want.max_age) return;
  try {
    await jsm.streams.update(EVENTS_STREAM, { ...si.config, ...want, discard: DiscardPolicy.Old });
    opts.log?.info({ stream: EVENTS_STREAM, ...want }, "events stream limits updated");
  } catch (err) {
    opts.log?.warn(
      { stream: EVENTS_STREAM, err: errorMessage(err) },
      "could not apply limits.eventsMaxBytes/eventsMaxAge to the existing events stream; it keeps its limits",
    );
  }
}

/**
 * The bucket takes a configured byte limit unless its records already use more than the soft
 * share of it: JetStream would delete records to fit a lower limit.
 */
/**
 * The workers bucket keeps the TTL of the daemon that created it; a daemon with a longer
 * presence interval raises it to its own (never lowers it), or its key would expire between
 * two of its beats and it would flicker out of discovery.
 */
async function raiseWorkersTtl(jsm: JetStreamManager, opts: TopologyOptions): Promise<void> {
  const want = opts.presenceTtlMs * 1_000_000;
  try {
    const si = await jsm.streams.info(WORKERS_BUCKET_STREAM);
    if (si.config.max_age === 0 || si.config.max_age >= want) return;
    await jsm.streams.update(WORKERS_BUCKET_STREAM, { ...si.config, max_age: want });
  } catch (err) {
    opts.log?.warn(
      { bucket: WORKERS_BUCKET, err: errorMessage(err) },
      "cannot raise the workers bucket's TTL to this daemon's presence TTL (3 presence intervals); other daemons may see it come and go: give every daemon the same presenceInterval",
    );
  }
}

async function applyTaskLimits(jsm: JetStreamManager, opts: TopologyOptions): Promise<void> {
  const want = opts.tasksMaxBytes;
  if (want === undefined) return;
  const si = await jsm.streams.info(TASKS_BUCKET_STREAM);
  if (si.config.max_bytes === want && si.config.discard === DiscardPolicy.New) return;
  if (si.state.bytes > want * SOFT_RATIO) {
    opts.log?.warn(
      { bucket: TASKS_BUCKET, used: si.state.bytes, limit: si.config.max_bytes, wanted: want },
      `limits.tasksMaxBytes (${formatBytes(want)}) is below what the task records use (${formatBytes(si.state.bytes)}) with headroom; the bucket keeps its limit`,
    );
    return;
  }
  try {
    await jsm.streams.update(TASKS_BUCKET_STREAM, {
      ...si.config,
      max_bytes: want,
      discard: DiscardPolicy.New,
    });
    opts.log?.info({ bucket: TASKS_BUCKET, maxBytes: want }, "task bucket byte limit updated");
  } catch (err) {
    opts.log?.warn(
      { bucket: TASKS_BUCKET, err: errorMessage(err) },
      "could not apply limits.tasksMaxBytes to the existing task bucket; it keeps its limit",
    );
  }
}

async function ensureStream(jsm: JetStreamManager, cfg: Parameters<JetStreamManager["streams"]["add"]>[0]) {
  try {
    await jsm.streams.info(cfg.name!);
    return;
  } catch (err) {
    if (!isStreamNotFound(err)) throw err;
  }
  try {
    await jsm.streams.add(cfg);
  } catch (err) {
    if (isAlreadyExists(err)) return;
    // Two daemons creating it at once: in a cluster the loser may be told "subjects overlap with
    // an existing stream" instead. A stream of this name there now is the one both asked for.
    if (
      !(await jsm.streams.info(cfg.name!).then(
        () => true,
        () => false,
      ))
    )
      throw err;
  }
}

async function ensureConsumer(jsm: JetStreamManager, js: JetStreamClient, pool: string, leaseMs: number) {
  const name = poolConsumerName(pool);
  try {
    await jsm.consumers.info(TASKS_STREAM, name);
  } catch (err) {
    if (!isConsumerNotFound(err)) throw err;
    try {
      await jsm.consumers.add(TASKS_STREAM, {
        durable_name: name,
        filter_subject: poolFilter(pool),
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: leaseMs * 1_000_000,
        max_deliver: -1,
        max_ack_pending: 10_000,
      });
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
    }
  }
  return js.consumers.get(TASKS_STREAM, name);
}
