/**
 * Which task records `mesh tasks` shows, read without the whole bucket where a limit allows it.
 *
 * - No limit: every record, in one pass over the bucket (see nats/kv-scan.ts), newest
 *   submission first (ties by id).
 * - A limit: the `limit` most recently changed records that match, newest change first (by
 *   record revision, the bucket's write order). How they are found:
 *   - `--state queued` alone (any pool, plan or worker filter): the queue's doorbells and the
 *     index of parked tasks name the candidates (one stream-info request each), their records
 *     are read by key and the ones still queued kept (a doorbell outlives a claim or a cancel
 *     until it is acked; a retry in back-off keeps its doorbell; a task parked because no live
 *     worker serves it has no doorbell but an index entry, written before its doorbell was
 *     acked, see queue/parked.ts). When the candidates are many next to the records (a
 *     backlog), the bucket is read from its newest write backwards instead, as below.
 *   - any other filter: the bucket is read from its newest write backwards (nats/kv-tail.ts)
 *     until `limit` records match; when that takes more than the tail budget (few records
 *     match), the bucket is scanned instead. Either way the answer is the scan's.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import type { TaskFilter } from "./api/index.js";
import { isStreamNotFound, PARKED_STREAM, TASKS_STREAM } from "./nats/index.js";
import { doorbellIds, parkedIds } from "./queue/index.js";
import type { TaskRecord, TaskStore, UnreadableRecord, VersionedRecord } from "./tasks/index.js";

export interface ListingDeps {
  store: TaskStore;
  jsm: JetStreamManager;
  /** Tests: how many tail reads, and doorbell candidates, before a scan (defaults below). */
  budgets?: { tail?: number; doorbells?: number };
}

/**
 * How the records were found: the doorbells (with the index of parked tasks), the bucket's
 * tail, or a scan of the bucket.
 */
export type ListingPath = "doorbells" | "tail" | "scan";

export interface Listing {
  records: VersionedRecord[];
  unreadable: UnreadableRecord[];
  path: ListingPath;
}

/** Sequences read from the bucket's tail before a scan is cheaper: at least this many... */
const TAIL_MIN_BUDGET = 2_000;
/** ...or this many per record asked for, up to a quarter of the stream. */
const TAIL_PER_RECORD = 40;
/** Candidates (doorbells, parked) read by key before a scan is cheaper: at least this many, or 1/8 of the bucket. */
const DOORBELLS_MIN_BUDGET = 2_000;

/** Whether a record passes the filter's state, pool, plan and worker conditions. */
export function taskMatcher(filter: TaskFilter): (r: TaskRecord) => boolean {
  const states = filter.state && filter.state.length > 0 ? new Set(filter.state) : undefined;
  return (r) => {
    if (states && !states.has(r.state)) return false;
    if (filter.pool && r.spec.pool !== filter.pool) return false;
    if (filter.plan && r.spec.plan !== filter.plan) return false;
    // A worker id, or a worker name (ids are `<name>-<random>`).
    const w = filter.workerId;
    if (w && !r.attempts.some((a) => a.workerId === w || a.workerId.startsWith(`${w}-`))) return false;
    return true;
  };
}

/** The records `filter` selects, in its order (see above). */
export async function findTasks(d: ListingDeps, filter: TaskFilter = {}): Promise<Listing> {
  const match = taskMatcher(filter);
  const limit = filter.limit && filter.limit > 0 ? filter.limit : 0;
  if (limit === 0) {
    const { records, unreadable } = await d.store.scan();
    return { records: records.filter((v) => match(v.record)).sort(bySubmission), unreadable, path: "scan" };
  }
  const queuedOnly = filter.state?.length === 1 && filter.state[0] === "queued";
  if (queuedOnly) {
    const ids = await queuedCandidates(d, filter.pool);
    if (ids) {
      const { records, unreadable } = await d.store.getMany(ids);
      const picked = records.filter((v) => match(v.record)).sort(byRevision);
      return { records: picked.slice(0, limit), unreadable, path: "doorbells" };
    }
    // A backlog: queued tasks are many, so the bucket's newest writes are mostly theirs.
  }
  // Past a quarter of the stream a scan costs less (each tail read is a request of its own).
  const budget =
    d.budgets?.tail ??
    ((span: number) => Math.max(TAIL_MIN_BUDGET, Math.min(limit * TAIL_PER_RECORD, Math.ceil(span / 4))));
  const tail = await d.store.newest(limit, match, budget);
  if (tail) return { ...tail, path: "tail" };
  const { records, unreadable } = await d.store.scan();
  const picked = records.filter((v) => match(v.record)).sort(byRevision);
  return { records: picked.slice(0, limit), unreadable, path: "scan" };
}

/**
 * The ids that may be queued tasks (of `pool`, or of every pool): the doorbells' and the parked
 * index's, read by key next. Undefined when they are more than the budget next to the records
 * (1/8 of the bucket, at least DOORBELLS_MIN_BUDGET): reading each would cost more than the
 * bucket's tail or a scan. Without a pool the streams' message counts tell that before their
 * subjects are asked for (a backlog of 100,000 doorbells is a large answer).
 */
async function queuedCandidates(d: ListingDeps, pool: string | undefined): Promise<string[] | undefined> {
  const [limit, waiting] = await Promise.all([
    d.budgets?.doorbells ?? d.store.count().then((n) => Math.max(DOORBELLS_MIN_BUDGET, n / 8)),
    // Without a pool, every doorbell counts: known from the streams' sizes, before their names.
    pool
      ? 0
      : Promise.all([streamMessages(d.jsm, TASKS_STREAM), streamMessages(d.jsm, PARKED_STREAM)]).then(
          ([rung, parked]) => rung + parked,
        ),
  ]);
  if (waiting > limit) return undefined;
  const [rung, parked] = await Promise.all([doorbellIds(d.jsm, pool), parkedIds(d.jsm, pool)]);
  // A task can be in both (the sweeper rang it again before removing its entry): read once.
  const ids = [...new Set([...rung, ...parked])];
  return ids.length <= limit ? ids : undefined;
}

/** How many messages `stream` holds (0 when it does not exist). */
async function streamMessages(jsm: JetStreamManager, stream: string): Promise<number> {
  try {
    return (await jsm.streams.info(stream)).state.messages;
  } catch (err) {
    if (isStreamNotFound(err)) return 0;
    throw err;
  }
}

/** Newest submission first, ties by id (the order of a listing without a limit). */
function bySubmission(a: VersionedRecord, b: VersionedRecord): number {
  return b.record.submittedAt.localeCompare(a.record.submittedAt) || a.record.id.localeCompare(b.record.id);
}

/** Newest change (record revision) first. */
function byRevision(a: VersionedRecord, b: VersionedRecord): number {
  return b.revision - a.revision;
}
