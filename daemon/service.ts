/**
 * MeshService: the daemon's answer for the whole mesh (implements MeshApi over NATS). The gRPC
 * server only translates to and from it.
 */
import { DeliverPolicy, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { ActivityFeed } from "./activity-feed.js";
import {
  type MeshApi,
  type MeshEvent,
  type PlanSubmitResult,
  type PlanSummary,
  type PlanView,
  type SubmitResult,
  type TaskFilter,
  type TaskList,
  type TaskView,
  taskStatus,
} from "./api/index.js";
import type { MeshObserver } from "./claim/index.js";
import { errorMessage, isMeshError, MeshError } from "./errors.js";
import type { Logger } from "./log.js";
import {
  cancelSubject,
  EVENTS_STREAM,
  type JsPublish,
  STATE_EVENTS_FILTER,
  taskEventSubject,
} from "./nats/index.js";
import { type AddedTask, addToPlan } from "./plan-delegate.js";
import { getPlan, listPlans, type PlanServiceDeps, submitPlan, unmetNeeds } from "./plan-service.js";
import {
  type ChildRequest,
  DELEGATION_DEFAULTS,
  type DelegationLimits,
  listPlanConflicts,
  type PlanScheduler,
  type PlanSpec,
  type PlanStore,
} from "./plans/index.js";
import { ringDoorbell } from "./queue/index.js";
import { listWorkers, unschedulableReason, type WorkerInfo } from "./registry/index.js";
import { findTasks } from "./task-listing.js";
import {
  cancel,
  checkBatchPolicy,
  type EventPublisher,
  expectState,
  inState,
  isTerminal,
  requestCancel,
  retry,
  type StateEvent,
  type Step,
  stateEvents,
  submit,
  TRANSITIONS,
  type TaskEvent,
  type TaskPolicy,
  type TaskRecord,
  type TaskSpec,
  type TaskStore,
  type VersionedRecord,
} from "./tasks/index.js";
import { Channel, pause } from "./util/index.js";

export interface MeshServiceDeps {
  nc: NatsConnection;
  js: JetStreamClient;
  /** Rings doorbells. */
  publisher: JsPublish;
  jsm: JetStreamManager;
  store: TaskStore;
  workersKv: KV;
  events: EventPublisher;
  log: Logger;
  presenceTtlMs: number;
  /** The daemon's worker directory (kept current by a watch); undefined: read the bucket. */
  cachedWorkers?: () => readonly WorkerInfo[] | undefined;
  /** How often watchers re-check records and presence (2.9 has no expiry events). */
  pollMs?: number;
  observer?: MeshObserver;
  /** This daemon's ceilings for task input: a spec above them is refused at submit. */
  policy?: TaskPolicy;
  /** Refuses a submit that would fill the tasks bucket (RESOURCE_EXHAUSTED); none: no check. */
  capacity?: { admit(bytes: number): Promise<void> };
  /** Plans: their records and their scheduling; none: plan calls are refused. */
  plans?: { store: PlanStore; scheduler: PlanScheduler; limits?: DelegationLimits };
  /** Refuses a spec whose `uses` no declared resource can hold (INVALID_ARGUMENT naming the field). */
  checkUses?: (spec: TaskSpec, field: string) => void;
  /** Agent activity and revision sightings for the status model; none: status from the record alone. */
  activity?: ActivityFeed;
  /** This daemon's lease, for records that do not carry their owner's. */
  leaseMs?: number;
}

export class MeshService implements MeshApi {
  private readonly pollMs: number;

  constructor(private readonly d: MeshServiceDeps) {
    this.pollMs = d.pollMs ?? 1000;
  }

  /**
   * A written step's state events, sent at once: they must be stored before the doorbell the
   * caller rings next (see publishNow).
   */
  private announce(written: TaskRecord, step: Step): void {
    this.d.events.announce(written, step.notices, {
      now: true,
      onState: (to) => this.d.observer?.transition({ pool: written.spec.pool, to }),
    });
  }

  /**
   * Idempotent by id: a spec already submitted under its id yields that task, unchanged. A
   * *different* spec under an existing id is refused (ALREADY_EXISTS), and nothing of the batch is
   * submitted: batches are checked up front; a single spec is checked when its create finds the
   * id taken (the common case costs no extra read).
   */
  async submit(specs: TaskSpec[]): Promise<SubmitResult[]> {
    specs.forEach((s, i) => {
      if (s.plan) {
        const field = specs.length === 1 ? "plan" : `tasks[${i}].plan`;
        throw new MeshError(
          "INVALID_ARGUMENT",
          `${field}: a task of a plan is submitted with its plan: write a plan document and use \`mesh plan submit\``,
          { field },
        );
      }
    });
    if (this.d.policy) checkBatchPolicy(specs, this.d.policy);
    if (this.d.checkUses)
      for (const [i, s] of specs.entries()) this.d.checkUses(s, specs.length === 1 ? "uses" : `tasks[${i}].uses`);
    if (specs.length > 1) {
      const ids = new Set<string>();
      specs.forEach((s, i) => {
        if (ids.has(s.id))
          throw new MeshError("INVALID_ARGUMENT", `tasks[${i}].id: duplicate id "${s.id}" in one batch`, {
            field: `tasks[${i}].id`,
          });
        ids.add(s.id);
      });
      const existing = await Promise.all(specs.map((s) => this.d.store.get(s.id)));
      specs.forEach((spec, i) => {
        const e = existing[i];
        if (e) refuseDifferentSpec(e.record.spec, spec, `tasks[${i}].id`);
      });
    }
    const now = new Date();
    const steps = specs.map((spec) => submit(spec, now));
    const records = steps.map((s) => s.record);
    // The whole batch or nothing: refused up front when it would fill the bucket.
    await this.d.capacity?.admit(records.reduce((n, r) => n + recordBytes(r), 0));
    // Every record first, then the doorbells: a create refused part-way (the bucket filled up
    // behind the check above, by another daemon's submit) takes back the ones made before it,
    // which no doorbell has announced yet, so a refused batch changes nothing.
    const made: Array<VersionedRecord | undefined> = [];
    try {
      for (const r of records) made.push(await this.d.store.create(r));
    } catch (err) {
      const undo = made.filter((v): v is VersionedRecord => v !== undefined);
      await Promise.allSettled(undo.map((v) => this.d.store.purge(v)));
      throw err;
    }
    const out: SubmitResult[] = [];
    for (const [i, spec] of specs.entries()) {
      const created = made[i];
      if (created) {
        this.d.observer?.submitted({ pool: spec.pool });
        this.announce(created.record, steps[i]!);
        await ringDoorbell(this.d.publisher, spec.pool, spec.id, `${spec.id}#submit`, created);
        out.push({ id: spec.id, created: true, state: "queued" });
        continue;
      }
      const existing = await this.d.store.get(spec.id);
      if (!existing) throw new MeshError("CONFLICT", `task ${spec.id} exists but cannot be read; try again`);
      refuseDifferentSpec(existing.record.spec, spec, specs.length > 1 ? `tasks[${i}].id` : "id");
      // Re-ring a still-queued task's doorbell: deduplicated inside the window, harmless after it.
      if (existing.record.state === "queued") {
        await ringDoorbell(
          this.d.publisher,
          existing.record.spec.pool,
          spec.id,
          `${spec.id}#submit`,
          existing,
        );
      }
      out.push({ id: spec.id, created: false, state: existing.record.state });
    }
    return out;
  }

  private planDeps(): PlanServiceDeps {
    const plans = this.d.plans;
    if (!plans) throw new MeshError("FAILED_PRECONDITION", "this daemon serves no plans");
    return {
      store: this.d.store,
      plans: plans.store,
      log: this.d.log,
      ...(this.d.policy ? { policy: this.d.policy } : {}),
      ...(this.d.capacity ? { capacity: this.d.capacity } : {}),
      announce: (written, step) => this.announce(written, step),
      ring: (v, key) => ringDoorbell(this.d.publisher, v.record.spec.pool, v.record.id, key, v),
      refuseDifferentSpec,
      stableJson,
      onSubmitted: (spec) => this.d.observer?.submitted({ pool: spec.pool }),
    };
  }

  submitPlan(plan: PlanSpec, submitter?: string): Promise<PlanSubmitResult> {
    return submitPlan(this.planDeps(), plan, submitter);
  }

  /** A running task of a plan adds a task to it (its per-task port's `add-task`). */
  addToPlan(parent: TaskSpec, req: ChildRequest): Promise<AddedTask> {
    const plans = this.d.plans;
    if (!plans) throw new MeshError("FAILED_PRECONDITION", "this daemon serves no plans");
    return addToPlan(
      {
        store: this.d.store,
        plans: plans.store,
        scheduler: plans.scheduler,
        limits: plans.limits ?? DELEGATION_DEFAULTS,
        log: this.d.log,
        announce: (written, step) => this.announce(written, step),
        ring: (v, key) => ringDoorbell(this.d.publisher, v.record.spec.pool, v.record.id, key, v),
        onSubmitted: (spec) => this.d.observer?.submitted({ pool: spec.pool }),
      },
      parent,
      req,
    );
  }

  async getPlan(id: string): Promise<PlanView> {
    const workers = await this.listWorkers();
    return getPlan(
      this.planDeps(),
      id,
      (v) => this.view(v, workers),
      (plan) => listPlanConflicts(this.d, plan),
    );
  }

  listPlans(): Promise<PlanSummary[]> {
    return listPlans(this.planDeps());
  }

  /** The daemon's directory when it has one (kept current by its watch), else one pass over the bucket. */
  async listWorkers(): Promise<WorkerInfo[]> {
    const cached = this.d.cachedWorkers?.();
    return cached ? [...cached] : listWorkers(this.d.workersKv, this.d.jsm, this.d.presenceTtlMs);
  }

  private view(v: VersionedRecord, workers: WorkerInfo[]): TaskView {
    const r = v.record;
    let unschedulable: string | undefined;
    if (!isTerminal(r.state) && r.state !== "waiting")
      unschedulable = unschedulableReason(workers, r.spec.pool, r.spec.labels, r.spec.runner);
    const now = Date.now();
    const feed = this.d.activity;
    const activity = feed?.of(r.id);
    const status = taskStatus({
      record: r,
      liveWorkers: new Set(workers.map((w) => w.workerId)),
      now,
      ...(feed ? { revisionSeenForMs: feed.revisionSeenFor(r.id, v.revision) } : {}),
      ...(activity ? { activity } : {}),
      ...(unschedulable ? { unschedulable } : {}),
      ...(this.d.leaseMs ? { defaultLeaseMs: this.d.leaseMs } : {}),
    });
    return { record: r, revision: v.revision, status, ...(unschedulable ? { unschedulable } : {}) };
  }

  async getTask(id: string): Promise<TaskView> {
    const v = await this.d.store.get(id);
    if (!v) throw new MeshError("NOT_FOUND", `no task with id "${id}"; list them with \`mesh tasks\``);
    const out = this.view(v, await this.listWorkers());
    const needs = v.record.spec.needs ?? [];
    if (v.record.state === "waiting" && needs.length > 0)
      out.waitingOn = await unmetNeeds(this.d.store, needs);
    return out;
  }

  async listTasks(filter: TaskFilter = {}): Promise<TaskList> {
    const [{ records, unreadable }, workers] = await Promise.all([
      findTasks({ store: this.d.store, jsm: this.d.jsm }, filter),
      this.listWorkers(),
    ]);
    return { tasks: records.map((v) => this.view(v, workers)), unreadable };
  }

  async cancel(id: string): Promise<TaskView> {
    let step: Step | undefined;
    const { after, changed, before } = await this.d.store.mutate(id, (r) => {
      if (isTerminal(r.state)) return undefined;
      // Queued (also in a retry back-off, or handed back with a cancel already pending): done now.
      step = inState(r, TRANSITIONS.cancel.from)
        ? cancel(r, new Date())
        : requestCancel(expectState(r, "cancel", TRANSITIONS.requestCancel.from));
      return step.write ? step.record : undefined;
    });
    if (!changed && isTerminal(before.record.state)) {
      throw new MeshError(
        "FAILED_PRECONDITION",
        `task ${id} is already ${before.record.state}; nothing to cancel`,
      );
    }
    if (changed && step && after.record.state === "cancelled") {
      this.announce(after.record, step);
      // Its dependents are settled by their policy (cancelled with it, by default).
      await this.d.plans?.scheduler.afterSettled(after.record);
    } else this.d.nc.publish(cancelSubject(id));
    return this.view(after, await this.listWorkers());
  }

  async retry(id: string): Promise<TaskView> {
    let step: Step | undefined;
    const { after, changed, before } = await this.d.store.mutate(id, (r) => {
      if (!inState(r, TRANSITIONS.retry.from)) return undefined;
      step = retry(r);
      return step.record;
    });
    if (!changed || !step) {
      throw new MeshError(
        "FAILED_PRECONDITION",
        `task ${id} is ${before.record.state}; only failed or dead tasks can be retried`,
      );
    }
    this.announce(after.record, step);
    await ringDoorbell(
      this.d.publisher,
      after.record.spec.pool,
      id,
      `${id}#retry-${after.record.attempt}-${after.revision}`,
      after,
    );
    // The dependents it had cancelled wait for it again.
    await this.d.plans?.scheduler.reopenDependents(id);
    return this.view(after, await this.listWorkers());
  }

  async *watchTask(id: string, signal: AbortSignal): AsyncIterable<TaskEvent> {
    // A watch opened while NATS is briefly away (a NATS error, not a MeshError) waits for it.
    const untilNats = async <T>(f: () => Promise<T>): Promise<T> => {
      for (;;) {
        try {
          return await f();
        } catch (err) {
          if (isMeshError(err) || signal.aborted) throw err;
          this.d.log.debug({ taskId: id, err: errorMessage(err) }, "watch: NATS not answering; trying again");
          await pause(this.pollMs, signal);
        }
      }
    };
    const first = await untilNats(() => this.d.store.get(id));
    if (!first) throw new MeshError("NOT_FOUND", `no task with id "${id}"; list them with \`mesh tasks\``);
    const inner = linked(signal);
    const ch = new Channel<TaskEvent | { type: "__check" }>();
    const filter_subjects = `${taskEventSubject(id)}.>`;
    let msgs = await untilNats(async () =>
      (
        await this.d.js.consumers.get(EVENTS_STREAM, {
          filter_subjects,
          deliver_policy: DeliverPolicy.All,
        })
      ).consume(),
    );
    // A consumer that fails while NATS is away (a NATS error, not a MeshError) is opened again
    // after the last event delivered, once NATS answers: a brief outage does not end the watch.
    const pump = (async () => {
      let lastSeq = 0;
      for (;;) {
        try {
          for await (const m of msgs) {
            lastSeq = m.seq;
            ch.push(m.json<TaskEvent>());
          }
          return;
        } catch (err) {
          if (isMeshError(err) || inner.signal.aborted) throw err;
          this.d.log.debug(
            { taskId: id, err: errorMessage(err) },
            "watch: events consumer failed; reopening",
          );
        }
        for (;;) {
          await pause(this.pollMs, inner.signal);
          try {
            const again = await this.d.js.consumers.get(EVENTS_STREAM, {
              filter_subjects,
              ...(lastSeq > 0
                ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: lastSeq + 1 }
                : { deliver_policy: DeliverPolicy.All }),
            });
            msgs = await again.consume();
            break;
          } catch (err) {
            if (isMeshError(err)) throw err;
          }
        }
      }
    })().catch((err) => {
      if (!inner.signal.aborted) ch.close(err);
    });
    const stop = () => {
      void msgs.close();
      ch.close();
    };
    signal.addEventListener("abort", stop, { once: true });
    // Events are best effort; the record is the truth. Re-check it so a watcher always ends.
    const checker = (async () => {
      while (!inner.signal.aborted) {
        await pause(this.pollMs, inner.signal);
        ch.push({ type: "__check" });
      }
    })();
    // A watch replays every attempt but ends only on the terminal state of the record's current
    // attempt: a retried task's first `failed`/`dead` is history, not the end.
    let lastTerminal: { state: string; attempt: number } | undefined;
    const endsWith = (e: { state: string; attempt: number } | undefined, r: TaskRecord): boolean =>
      e !== undefined && isTerminal(r.state) && e.state === r.state && e.attempt === r.attempt;
    let eventsSinceCheck = 0;
    // NATS away or slow (a NATS error, not a MeshError) does not end the watch: a brief outage
    // must not end `mesh watch` or `submit --wait`; the record is read again at the next poll.
    const reread = () =>
      this.d.store.get(id).catch((err: unknown) => {
        if (isMeshError(err)) throw err;
        this.d.log.debug({ taskId: id, err: errorMessage(err) }, "watch: task record not readable now");
        return undefined;
      });
    try {
      for await (const e of ch) {
        if (e.type === "__check") {
          const quiet = eventsSinceCheck === 0 && ch.size === 0;
          eventsSinceCheck = 0;
          const cur = await reread();
          if (!cur || !isTerminal(cur.record.state)) continue;
          if (endsWith(lastTerminal, cur.record)) return;
          // The terminal event may have been lost (events are best effort): after a whole
          // quiet poll period, end from the record instead of waiting forever.
          if (quiet) {
            yield* stateEvents(cur.record, [{ of: "record" }]);
            return;
          }
          continue;
        }
        eventsSinceCheck++;
        yield e;
        if (e.type === "state" && isTerminal(e.state)) {
          lastTerminal = { state: e.state, attempt: e.attempt };
          const cur = await reread();
          if (cur && endsWith(lastTerminal, cur.record)) return;
        }
      }
    } finally {
      signal.removeEventListener("abort", stop);
      inner.abort();
      void msgs.close();
      ch.close();
      await Promise.allSettled([pump, checker]);
    }
  }

  async *taskHistory(id: string, signal: AbortSignal): AsyncIterable<TaskEvent> {
    const first = await this.d.store.get(id);
    if (!first) throw new MeshError("NOT_FOUND", `no task with id "${id}"; list them with \`mesh tasks\``);
    const filter = `${taskEventSubject(id)}.>`;
    const info = await this.d.jsm.streams.info(EVENTS_STREAM, { subjects_filter: filter });
    const stored = Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
    let last: StateEvent | undefined;
    if (stored > 0) {
      const c = await this.d.js.consumers.get(EVENTS_STREAM, {
        filter_subjects: filter,
        deliver_policy: DeliverPolicy.All,
      });
      const msgs = await c.consume();
      const stop = () => void msgs.close();
      signal.addEventListener("abort", stop, { once: true });
      try {
        for await (const m of msgs) {
          const e = m.json<TaskEvent>();
          if (e.type === "state") last = e;
          yield e;
          // Pending counts what matched when delivered: 0 is the end of what was stored.
          if (m.info.pending === 0) break;
        }
      } finally {
        signal.removeEventListener("abort", stop);
        void msgs.close();
      }
    }
    if (signal.aborted) return;
    // Events are best effort, the record is the truth: its state ends the history when the
    // last state event stored is not it (an event lost, or none stored at all).
    const cur = (await this.d.store.get(id)) ?? first;
    const [now] = stateEvents(cur.record, [{ of: "record" }]);
    if (now && (last?.type !== "state" || last.state !== now.state || last.attempt !== now.attempt)) yield now;
  }

  async *watchMesh(signal: AbortSignal): AsyncIterable<MeshEvent> {
    const inner = linked(signal);
    const ch = new Channel<MeshEvent>();
    const oc = await this.d.js.consumers.get(EVENTS_STREAM, {
      filter_subjects: STATE_EVENTS_FILTER,
      deliver_policy: DeliverPolicy.New,
    });
    const msgs = await oc.consume();
    const pump = (async () => {
      for await (const m of msgs) {
        const e = m.json<TaskEvent>();
        if (e.type === "state") ch.push({ type: "task", event: e });
      }
    })().catch((err) => ch.close(err));
    const known = new Map((await this.listWorkers()).map((w) => [w.workerId, w]));
    const scan = (async () => {
      while (!inner.signal.aborted) {
        await pause(this.pollMs, inner.signal);
        if (inner.signal.aborted) break;
        try {
          const now = new Map((await this.listWorkers()).map((w) => [w.workerId, w]));
          for (const [wid, w] of now) if (!known.has(wid)) ch.push({ type: "worker_joined", worker: w });
          for (const wid of known.keys()) {
            if (!now.has(wid)) ch.push({ type: "worker_left", workerId: wid, at: new Date().toISOString() });
          }
          known.clear();
          for (const [k, v] of now) known.set(k, v);
        } catch (err) {
          this.d.log.debug({ err }, "worker scan failed");
        }
      }
    })();
    const stop = () => {
      void msgs.close();
      ch.close();
    };
    signal.addEventListener("abort", stop, { once: true });
    try {
      yield* ch;
    } finally {
      signal.removeEventListener("abort", stop);
      inner.abort();
      stop();
      await Promise.allSettled([pump, scan]);
    }
  }
}

/** What a record costs in the bucket: its JSON, and about as much again for subject and headers. */
function recordBytes(r: TaskRecord): number {
  return Buffer.byteLength(JSON.stringify(r)) + 128;
}

/** Throws ALREADY_EXISTS when `next` is not the spec already submitted under its id. */
function refuseDifferentSpec(stored: TaskSpec, next: TaskSpec, field: string): void {
  const differs = Object.keys({ ...stored, ...next }).filter(
    (k) =>
      stableJson((stored as Record<string, unknown>)[k]) !== stableJson((next as Record<string, unknown>)[k]),
  );
  if (differs.length === 0) return;
  throw new MeshError(
    "ALREADY_EXISTS",
    `task ${next.id} was already submitted with a different spec (${differs.join(", ")} ${differs.length === 1 ? "differs" : "differ"}); nothing was submitted. Submit the new spec under another id, or leave "id" out to get a generated one`,
    { field },
  );
}

/** JSON with object keys sorted, so equal values compare equal whatever their key order. */
function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) =>
    val && typeof val === "object" && !Array.isArray(val)
      ? Object.fromEntries(
          Object.entries(val as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)),
        )
      : val,
  );
}

/** A controller aborted with `outer`, that the generator can also abort when it ends. */
function linked(outer: AbortSignal): AbortController {
  const c = new AbortController();
  if (outer.aborted) c.abort();
  else outer.addEventListener("abort", () => c.abort(), { once: true });
  return c;
}
