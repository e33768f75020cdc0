/**
 * The JetStream objects agent-mesh uses, created idempotently:
 * - stream MESH_TASKS (work queue, subjects mesh.task.<pool>): doorbells, one per enqueue;
 * - one durable pull consumer per pool with a disjoint filter;
 * - stream MESH_EVENTS (limits): task state changes and agent events, replayable;
 * - KV mesh-tasks (task records, the source of truth) and mesh-workers (presence, TTL).
 */
import {
  AckPolicy,
  type Consumer,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { JsPublisher } from "../nats/js-publisher.js";
import { EVENTS_STREAM } from "../tasks/events.js";

export const TASKS_STREAM = "MESH_TASKS";
export const TASKS_BUCKET = "mesh-tasks";
export const WORKERS_BUCKET = "mesh-workers";
/** A doorbell for task `id` in `pool`. One subject per task lets the sweeper see whether a task has one. */
export const taskSubject = (pool: string, id: string): string => `mesh.task.${pool}.${id}`;
export const poolFilter = (pool: string): string => `mesh.task.${pool}.*`;
export const poolConsumerName = (pool: string): string => `pool-${pool}`;

export interface TopologyOptions {
  replicas: number;
  leaseMs: number;
  presenceTtlMs: number;
  /** JetStream domain (leaf-node set-ups). */
  domain?: string;
  eventsMaxAgeMs?: number;
  /** JetStream's duplicate window for enqueues (default 2 min). */
  duplicateWindowMs?: number;
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
}

function isAlreadyExists(err: unknown): boolean {
  const code = (err as { api_error?: { err_code?: number } }).api_error?.err_code;
  // 10058 stream name in use with different config; 10148 consumer already exists (different config)
  return code === 10058 || code === 10148 || /already in use|already exists/i.test(String(err));
}

export async function ensureTopology(nc: NatsConnection, opts: TopologyOptions): Promise<Topology> {
  const jsOpts = opts.domain ? { domain: opts.domain } : {};
  const jsm = await jetstreamManager(nc, jsOpts);
  const js = jetstream(nc, jsOpts);

  await ensureStream(jsm, {
    name: TASKS_STREAM,
    subjects: ["mesh.task.>"],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas: opts.replicas,
    duplicate_window: (opts.duplicateWindowMs ?? 120_000) * 1_000_000,
  });
  await ensureStream(jsm, {
    name: EVENTS_STREAM,
    subjects: ["mesh.events.>"],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: opts.replicas,
    max_age: (opts.eventsMaxAgeMs ?? 7 * 86_400_000) * 1_000_000,
    max_msgs_per_subject: 100_000,
  });

  const kvm = new Kvm(js);
  const tasks = await kvm.create(TASKS_BUCKET, { history: 1, replicas: opts.replicas });
  const workers = await kvm.create(WORKERS_BUCKET, {
    history: 1,
    replicas: opts.replicas,
    ttl: opts.presenceTtlMs,
  });

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
    tasksPutPrefix: `${opts.domain ? `${apiPrefix}.` : ""}$KV.${TASKS_BUCKET}`,
    publisher: new JsPublisher(nc),
  };
}

async function ensureStream(jsm: JetStreamManager, cfg: Parameters<JetStreamManager["streams"]["add"]>[0]) {
  try {
    await jsm.streams.info(cfg.name!);
    return;
  } catch (err) {
    if (!/stream not found/i.test(String(err))) throw err;
  }
  try {
    await jsm.streams.add(cfg);
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
}

async function ensureConsumer(jsm: JetStreamManager, js: JetStreamClient, pool: string, leaseMs: number) {
  const name = poolConsumerName(pool);
  try {
    await jsm.consumers.info(TASKS_STREAM, name);
  } catch (err) {
    if (!/consumer not found/i.test(String(err))) throw err;
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
