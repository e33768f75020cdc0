/**
 * The daemon: composes the rooms (NATS topology, presence registry, claim loop, runners,
 * sweeper, servers) and owns their lifecycle (lib/lifecycle.ts): they start in order and stop
 * in reverse, NATS last. start() refuses a second start; stop() is memoized: stop intake, let
 * running tasks finish within the grace period, then hand the rest back to the queue. When a
 * part it cannot live without dies (the NATS connection closes for good, the cancel
 * subscription ends) it stops itself at once and `closed` rejects with a MeshError naming it.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdir } from "node:fs/promises";
import type { NatsConnection } from "@nats-io/transport-node";
import { makeRedactor, type Redactor } from "../agent-shim/index.js";
import { type LifeState, Part, PartGroup } from "../lib/index.js";
import type { MeshApi } from "./api/index.js";
import {
  Claimer,
  ClaimLoop,
  Execution,
  FileLeases,
  type MeshObserver,
  NatsLeaseBeacon,
  noopObserver,
  PlanCheck,
  type Runner,
} from "./claim/index.js";
import type { DaemonConfig } from "./config.js";
import { errorMessage, isMeshError, MeshError } from "./errors.js";
import { createLogger, type Logger } from "./log.js";
import {
  cancelSubject,
  connectNats,
  isJetStreamUnavailable,
  poolConsumerName,
  TASKS_STREAM,
} from "./nats/index.js";
import { WebhookDeliverer } from "./notify/index.js";
import { PlanBranchStore, PlanScheduler, PlanStore } from "./plans/index.js";
import type { DaemonPlugin } from "./plugin.js";
import {
  type Delivery,
  ensureTopology,
  markParked,
  Puller,
  ringDoorbell,
  Sweeper,
  type Topology,
} from "./queue/index.js";
import {
  AccountBook,
  type AccountStateView,
  accountStateReader,
  jitterCap,
  openSlotsBucket,
  PARK_SPREAD_MS,
  parkedUntil,
  QuotaGate,
  type QuotaEntry,
  quotaView,
  recordLiveness,
  SlotStore,
  stateAt,
} from "./quota/index.js";
import { listWorkers, Presence, sortWorkers, WorkerDirectory, type WorkerInfo } from "./registry/index.js";
import { defaultRunners, defaultWorkspaces, type RunnerWiring } from "./runtime.js";
import { daemonSecrets } from "./secrets.js";
import { MeshService } from "./service.js";
import { ActivityFeed } from "./activity-feed.js";
import { guardRunner, guardWorkspaces } from "./task-guard.js";
import { EventPublisher, type TaskRecord, TaskStore } from "./tasks/index.js";
import { monotonicNow, pause, Slots } from "./util/index.js";
import { VERSION } from "./version.js";
import { BundleStore, MeshTransfer } from "./transfer/index.js";
import { Git, keepBranchWhileTaskLives, MeshWorkspaces, type WorkspaceProvider } from "./workspace/index.js";

const BUILTIN_RUNNERS = ["claude", "command", "noop"] as const;
/** How long a start waits for a JetStream that does not answer yet. */
const JETSTREAM_WAIT_MS = 30_000;

export type DaemonState = LifeState;

export interface DaemonDeps {
  logger?: Logger;
  /** Runners by kind; defaults to the built-in runners enabled in config. */
  runners?: Runner[];
  workspaces?: WorkspaceProvider;
  observer?: MeshObserver;
}

export class Daemon extends Part {
  readonly workerId: string;
  readonly log: Logger;
  /** What stop() undoes, in reverse order of start. */
  private readonly parts: PartGroup;
  private graceMs: number;
  private lostWhileStarting: MeshError | undefined;
  private nc: NatsConnection | undefined;
  private topo: Topology | undefined;
  private loop: ClaimLoop | undefined;
  private readonly pullers = new Map<string, Puller>();
  private presence: Presence | undefined;
  private directory: WorkerDirectory | undefined;
  private accounts: AccountBook | undefined;

  /** Every account's limit state as this daemon sees it (quota/AccountBook; `mesh quota`). */
  get accountBook(): AccountBook | undefined {
    return this.accounts;
  }
  private sweeper: Sweeper | undefined;
  private service: MeshService | undefined;
  private events: EventPublisher | undefined;
  private _transfer: MeshTransfer | undefined;
  private readonly slots: Slots;
  readonly observer: MeshObserver;
  private readonly runners = new Map<string, Runner>();
  private readonly redact: Redactor;
  /** Runners not offered here, and why (shown by `mesh workers` and `mesh task`). */
  private readonly unavailableRunners = new Map<string, string>();
  private readonly startedAt = new Date().toISOString();
  private readonly plugins: DaemonPlugin[] = [];
  /** The store and file leases the built-in runners use, set once connected. */
  private readonly wiring: RunnerWiring = {};
  /** Extra presence fields set by plugins (e.g. the HTTP server's URL). */
  readonly presenceExtras: Partial<WorkerInfo> = {};
  private _slots: SlotStore | undefined;
  private taskStore: TaskStore | undefined;
  private _quota: QuotaGate | undefined;

  /** What `mesh quota` shows (GetQuota): caps, live holders, accounts and their state. */
  async quotaEntries(): Promise<QuotaEntry[]> {
    const q = this.quota;
    if (!q || !this.topo) throw new MeshError("UNAVAILABLE", "meshd is not running");
    const workers = this.directory?.list() ?? [];
    const self = this.snapshot();
    this.accountState ??= accountStateReader(this.topo.js);
    return quotaView({
      gate: q.gate,
      store: q.store,
      live: recordLiveness(this.taskStore!),
      workers: [...workers.filter((w) => w.workerId !== self.workerId), self],
      accountState: this.accountState,
    });
  }
  private accountState: ((a: string) => Promise<AccountStateView | undefined>) | undefined;

  /** The mesh-wide quota slots and the gate attempts pass (after start). */
  get quota(): { store: SlotStore; gate: QuotaGate } | undefined {
    return this._slots && this._quota ? { store: this._slots, gate: this._quota } : undefined;
  }

  constructor(
    readonly config: DaemonConfig,
    private readonly deps: DaemonDeps = {},
  ) {
    const workerId = `${config.name}-${randomBytes(4).toString("hex")}`;
    const log = deps.logger ?? createLogger(config.logLevel, { workerId });
    super("daemon", log);
    this.workerId = workerId;
    this.log = log;
    this.parts = new PartGroup(this.life.log);
    this.graceMs = config.shutdownGraceMs;
    this.slots = new Slots(config.slots);
    this.observer = deps.observer ?? noopObserver;
    // The daemon's secret values, masked in whatever its runners report.
    this.redact = makeRedactor(daemonSecrets(config));
    for (const r of deps.runners ??
      defaultRunners(config, this.log, this.redact, this.observer, this.wiring)) {
      if ((config.runners as string[]).includes(r.kind)) this.runners.set(r.kind, r);
    }
    for (const kind of BUILTIN_RUNNERS) {
      if (!(config.runners as string[]).includes(kind)) {
        this.unavailableRunners.set(
          kind,
          `not enabled on this worker (it runs ${config.runners.join(",")}; enable it with meshd --runners or runners: in its config)`,
        );
      }
    }
  }

  get api(): MeshApi {
    if (!this.service) throw new MeshError("FAILED_PRECONDITION", "daemon not started");
    return this.service;
  }
  get connection(): NatsConnection {
    if (!this.nc) throw new MeshError("FAILED_PRECONDITION", "daemon not started");
    return this.nc;
  }
  /** The bundle store's daemon side (code out, results home); set once started. */
  get transfer(): MeshTransfer | undefined {
    return this._transfer;
  }
  get topology(): Topology {
    if (!this.topo) throw new MeshError("FAILED_PRECONDITION", "daemon not started");
    return this.topo;
  }
  get slotsInfo(): { total: number; busy: number } {
    return { total: this.slots.total, busy: this.slots.busy };
  }
  get runningTaskIds(): string[] {
    return this.loop ? [...this.loop.running.keys()] : [];
  }
  /**
   * Whether this daemon is the mesh's sweeper now: the first live worker it knows of, or every
   * worker before it has not reported a finished pass (in its presence, so at most a presence
   * interval late) for three sweep intervals.
   */
  get sweeping(): boolean {
    if (this.state !== "running" || !this.directory) return false;
    const { sweepIntervalMs, presenceIntervalMs } = this.config;
    const staleMs = Math.max(sweepIntervalMs, presenceIntervalMs) * 3 + presenceIntervalMs;
    return this.directory.isChoreHolder(this.workerId, (w) => w.sweptAt, staleMs);
  }

  /** Passes this daemon's sweeper has made. */
  get sweepPasses(): number {
    return this.sweeper?.passes ?? 0;
  }

  /** Ready: connected to NATS and the pool consumers bound. */
  get ready(): boolean {
    return this.state === "running" && this.nc !== undefined && !this.nc.isClosed();
  }

  use(plugin: DaemonPlugin): this {
    if (this.state !== "new") throw new Error("plugins are added before start()");
    this.plugins.push(plugin);
    return this;
  }

  /**
   * The live workers as this daemon's directory sees them, with this daemon always among them
   * while it runs: its own liveness does not wait on its presence's round trip through NATS (a
   * busy moment that delays one would show its own tasks lost in its own views). Undefined
   * without a running directory.
   */
  private liveWorkers(): readonly WorkerInfo[] | undefined {
    if (this.directory?.state !== "running") return undefined;
    const list = this.directory.list();
    if (this.state !== "running" || list.some((w) => w.workerId === this.workerId)) return list;
    return sortWorkers([...list, this.snapshot()]);
  }

  snapshot(): WorkerInfo {
    const running = this.runningTaskIds;
    return {
      v: 1,
      workerId: this.workerId,
      name: this.config.name,
      host: this.config.host,
      pools: this.config.pools,
      labels: this.config.labels,
      runners: [...this.runners.keys()],
      slotsTotal: this.slots.total,
      slotsFree: this.slots.total - running.length,
      running,
      version: VERSION,
      startedAt: this.startedAt,
      updatedAt: new Date().toISOString(),
      staleAfterMs: this.config.presenceTtlMs,
      ...(this.state === "stopping" ? { draining: true } : {}),
      ...(this.sweeper?.lastPassAt ? { sweptAt: this.sweeper.lastPassAt.toISOString() } : {}),
      ...(this.unavailableRunners.size > 0
        ? {
            unavailableRunners: [...this.unavailableRunners].map(([runner, reason]) => ({ runner, reason })),
          }
        : {}),
      ...(this.runners.has("claude") ? { account: this.config.claude.account } : {}),
      ...(hasCaps(this.config.quota) ? { quota: this.config.quota } : {}),
      ...this.presenceExtras,
    };
  }

  protected async onStart(): Promise<void> {
    const cfg = this.config;
    const parts = this.parts;
    await mkdir(cfg.stateDir, { recursive: true, mode: 0o700 });
    // The socket, worktrees and agent transcripts live here: private to this user.
    await chmod(cfg.stateDir, 0o700).catch((err) =>
      this.log.warn({ err, stateDir: cfg.stateDir }, "cannot make the state dir private"),
    );
    const nc = await connectNats(cfg.nats, `meshd ${this.workerId}`);
    this.nc = nc;
    // Closed last: what the other parts hand back on their way out still reaches NATS.
    parts.add("nats", {
      stop: async () => {
        if (!nc.isClosed()) await nc.drain();
        this.topo?.publisher.close();
      },
    });
    void this.watchConnection(nc);
    void nc
      .closed()
      .then((err) =>
        this.lost(
          new MeshError(
            "UNAVAILABLE",
            `the NATS connection closed for good${err ? ` (${errorMessage(err)})` : ""}; meshd cannot go on without it`,
            { cause: err },
          ),
        ),
      );
    const topoOpts = {
      replicas: cfg.nats.replicas,
      leaseMs: cfg.leaseMs,
      presenceTtlMs: cfg.presenceTtlMs,
      ...(cfg.nats.domain ? { domain: cfg.nats.domain } : {}),
      eventsMaxBytes: cfg.limits.eventsMaxBytes,
      eventsMaxAgeMs: cfg.limits.eventsMaxAge,
      tasksMaxBytes: cfg.limits.tasksMaxBytes,
      log: this.log,
    };
    // A JetStream that is not there yet (a server or cluster still starting, a leaf whose hub
    // link is coming up) is waited for, up to JETSTREAM_WAIT_MS; then its error is the start's.
    const waitUntil = monotonicNow() + JETSTREAM_WAIT_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        this.topo = await ensureTopology(nc, topoOpts);
        break;
      } catch (err) {
        if (!isJetStreamUnavailable(err) || monotonicNow() >= waitUntil) throw err;
        if (attempt === 0) this.log.warn({ err: errorMessage(err) }, "waiting for JetStream");
        await pause(Math.min(250 * 2 ** attempt, 2_000));
      }
    }
    parts.add("pullers", { stop: () => Promise.all([...this.pullers.values()].map((p) => p.stop())) });
    for (const pool of cfg.pools) await this.topo.consumer(pool);
    // Without room for the bundle store the daemon still runs tasks on URL repos; shipped
    // (mesh://) repos then fail on it with the reason.
    const bundles = await BundleStore.open(this.topo.js, nc.info?.max_payload ?? 1024 * 1024, {
      replicas: cfg.nats.replicas,
      maxBytes: cfg.limits.bundlesMaxBytes,
      maxBundleBytes: cfg.limits.bundleMaxBytes,
      chunkBytes: cfg.limits.bundleChunkBytes,
      // Retention tied to the tasks': a bundle lives two task retentions (see transfer/ship.ts isFresh).
      ttlMs: cfg.taskRetentionMs * 2,
    }).catch((err: unknown) => {
      if (!isMeshError(err, "RESOURCE_EXHAUSTED")) throw err;
      this.log.warn({ err: err.message, field: err.field }, "running without the bundle store");
      return undefined;
    });
    if (bundles) {
      this._transfer = new MeshTransfer({
        git: new Git({ config: cfg.workspaces.gitConfig }),
        store: bundles,
        stateDir: cfg.stateDir,
        log: this.log,
      });
    }
    // Offer only runners that can work here; their tasks then wait for a worker that can.
    for (const [kind, runner] of [...this.runners]) {
      const why = await runner.unavailable?.();
      if (why) {
        this.log.warn({ runner: kind, why }, "runner not offered by this worker");
        this.runners.delete(kind);
        this.unavailableRunners.set(kind, why);
      }
    }
    const topo = this.topo;
    const store = new TaskStore(topo, undefined, {
      onUnreadable: (u) => {
        this.observer.unreadable({ kind: "record" });
        this.log.warn({ key: u.key, revision: u.revision, why: u.reason }, "unreadable task record skipped");
      },
    });
    this.wiring.store = store;
    this.wiring.fileLeases = new FileLeases({
      js: topo.js,
      store,
      ttlMs: cfg.leaseMs,
      replicas: cfg.nats.replicas,
      log: this.log,
    });
    this.events = new EventPublisher(nc, this.log);
    const events = this.events;
    parts.add("events", { stop: () => events.flush() });
    const planStore = await PlanStore.open(topo.js, topo.jsm, cfg.nats.replicas);
    this.wiring.plans = planStore;
    const plans = new PlanScheduler({
      store,
      plans: planStore,
      ring: (v, key) => ringDoorbell(topo.publisher, v.record.spec.pool, v.record.id, key, v),
      // At once: stored before the doorbell rung next (see EventPublisher.announce).
      announce: (r, notices) =>
        events.announce(r, notices, {
          now: true,
          onState: (to) => this.observer.transition({ pool: r.spec.pool, to }),
        }),
      log: this.log,
    });
    const settled = (r: TaskRecord) => plans.afterSettled(r);
    const activity = new ActivityFeed(topo.js, this.log);
    activity.start();
    parts.add("activity feed", { stop: () => activity.close() });
    this.service = new MeshService({
      activity,
      leaseMs: cfg.leaseMs,
      nc: this.nc,
      js: topo.js,
      publisher: topo.publisher,
      jsm: topo.jsm,
      store,
      workersKv: topo.workers,
      events,
      log: this.log,
      presenceTtlMs: cfg.presenceTtlMs,
      cachedWorkers: () => this.liveWorkers(),
      observer: this.observer,
      policy: cfg.taskPolicy,
      capacity: topo.tasksCapacity,
      plans: { store: planStore, scheduler: plans, limits: cfg.plans },
      checkUses: (spec, field) => this._quota?.checkUses(spec, field),
    });
    const service = this.service;
    this.wiring.addTask = (parent, req) => service.addToPlan(parent, req);
    const innerWorkspaces =
      this.deps.workspaces ??
      defaultWorkspaces(cfg, this.log, {
        keepBranch: keepBranchWhileTaskLives(
          async (id) => (await store.get(id))?.record,
          cfg.taskRetentionMs,
        ),
        ...(this._transfer ? { transfer: this._transfer } : {}),
      });
    const workspaces = guardWorkspaces(innerWorkspaces, cfg.taskPolicy);
    // Its sweep timer stops with the daemon (after the claim loop: no attempt prepares any more).
    parts.add("workspaces", { stop: () => workspaces.close?.() });
    const planCheck = await this.planCheck(innerWorkspaces);
    if (planCheck) parts.add("plan check", { stop: () => planCheck.idle() });
    const slotStore = new SlotStore(await openSlotsBucket(topo.js, cfg.nats.replicas));
    this._slots = slotStore;
    this.taskStore = store;
    const quota = new QuotaGate({
      store: slotStore,
      account: this.runners.has("claude") ? cfg.claude.account : undefined,
      own: cfg.quota,
      others: () =>
        (this.directory?.list() ?? []).filter((w) => w.workerId !== this.workerId).map((w) => w.quota ?? {}),
      live: recordLiveness(store),
      log: this.log,
    });
    this._quota = quota;
    // Account usage limits, shared mesh-wide: only Claude sessions are held back by them.
    const accounts = await AccountBook.open(topo.js, nc, {
      workerId: this.workerId,
      log: this.log,
      jitterMs: cfg.claude.resumeJitter,
      fallbackPauseMs: cfg.claude.limitPause,
      warnUtilization: cfg.claude.warnUtilization,
      replicas: cfg.nats.replicas,
      onState: (account, s) =>
        this.observer.accountState?.({
          account,
          state: stateAt(s, Date.now()),
          ...(s ? { untilMs: Date.parse(s.until) } : {}),
          ...(s?.utilization !== undefined ? { utilization: s.utilization } : {}),
        }),
    });
    this.accounts = accounts;
    this.observer.accountState?.({
      account: cfg.claude.account,
      state: accounts.stateName(cfg.claude.account),
    });
    parts.add("account limits", { stop: async () => accounts.stop() });
    const accountOf = (spec: { runner: string }): string | undefined =>
      spec.runner === "claude" ? cfg.claude.account : undefined;
    const limits = {
      accountOf,
      pausedMs: (a: string) => accounts.pausedMs(a),
      report: (a: string, l: Parameters<AccountBook["report"]>[1]) => accounts.report(a, l),
      state: (a: string) => accounts.state(a),
      jitterMs: cfg.claude.resumeJitter,
      fallbackPauseMs: cfg.claude.limitPause,
    };
    const claimer = new Claimer(
      store,
      {
        workerId: this.workerId,
        host: cfg.host,
        pools: cfg.pools,
        labels: cfg.labels,
        runners: [...this.runners.keys()],
      },
      {
        leaseMs: cfg.leaseMs,
        admit: (spec) => quota.admit(spec),
        ...(this.runners.has("claude") ? { account: cfg.claude.account } : {}),
        startsAtClaim: (spec) => !spec.repo || this.runners.get(spec.runner)?.needsWorkspace === false,
        servedByAnother: (pool, labels, runner) =>
          this.directory?.servedByAnother(this.workerId, pool, labels, runner) ?? true,
        startGate: (r) => {
          const account = accountOf(r.spec);
          const paused = account ? accounts.pausedMs(account) : 0;
          const s = account ? accounts.state(account) : undefined;
          if (paused <= 0 || !s) return 0;
          // Back after the parked tasks (they have the first PARK_SPREAD_MS after the reset), in
          // submission order too.
          const jitter = jitterCap(s, cfg.claude.resumeJitter);
          const due = parkedUntil(Date.parse(s.until), jitter, r.submittedAt) + PARK_SPREAD_MS;
          return Math.max(paused, due - Date.now());
        },
        workerLive: (id) => this.directory?.isLive(id) ?? false,
      },
    );
    const beacon = new NatsLeaseBeacon(nc, this.log, (id, revision) => claimer.observed(id, revision));
    await parts.start("lease beacon", beacon);
    this.loop = new ClaimLoop({
      pools: cfg.pools,
      slots: this.slots,
      claimer,
      puller: async (pool) => {
        await topo.consumer(pool);
        let p = this.pullers.get(pool);
        if (!p) {
          p = new Puller(this.connection, {
            apiPrefix: topo.apiPrefix,
            stream: TASKS_STREAM,
            consumer: poolConsumerName(pool),
            log: this.log,
            onConsumerGone: () => topo.forgetConsumer(pool),
          });
          this.pullers.set(pool, p);
          await p.start();
        }
        return p;
      },
      events,
      onSettled: settled,
      log: this.log,
      observer: this.observer,
      graceMs: cfg.shutdownGraceMs,
      park: (pool, taskId) => markParked(topo.publisher, pool, taskId),
      execution: (pool, d, msg: Delivery) => {
        const runner = this.runners.get(d.claimed.record.spec.runner);
        if (!runner) throw new Error(`no runner ${d.claimed.record.spec.runner}`); // claimer checked
        this.presence?.beatSoon();
        return new Execution(
          {
            store,
            events,
            runner: guardRunner(runner, cfg.taskPolicy, this.redact),
            workspaces,
            log: this.log,
            workerId: this.workerId,
            host: cfg.host,
            pool,
            stateDir: cfg.stateDir,
            leaseMs: cfg.leaseMs,
            heartbeatMs: cfg.heartbeatMs,
            retryDelayMs: cfg.retryDelayMs,
            defaultTimeoutMs: cfg.taskTimeoutMs,
            observer: this.observer,
            defaultResume: cfg.claude.resume,
            onFinished: () => this.presence?.beatSoon(),
            onSettled: settled,
            beacon,
            ...(planCheck ? { plans: planCheck } : {}),
            quota,
            limits,
          },
          d.claimed,
          msg,
        );
      },
    });
    this.presence = new Presence(topo.workers, () => this.snapshot(), cfg.presenceIntervalMs, this.log);
    const cancelSub = nc.subscribe(cancelSubject("*"), {
      callback: (err, m) => {
        // An error (a refused subscription) ends the subscription: `closed` reports it.
        if (err) return;
        const id = m.subject.slice(m.subject.lastIndexOf(".") + 1);
        if (this.loop?.cancel(id)) this.log.info({ taskId: id }, "cancel requested");
      },
    });
    parts.add("cancel subscription", { stop: async () => cancelSub.unsubscribe() });
    void cancelSub.closed.then(async (err) => {
      // A closing connection ends its subscriptions first: that death is the connection's.
      await new Promise((r) => setImmediate(r));
      if (nc.isClosed()) return;
      this.lost(
        new MeshError(
          "UNAVAILABLE",
          `the cancel subscription ended${err ? ` (${errorMessage(err)})` : ""}; running tasks could not be cancelled`,
          { cause: err },
        ),
      );
    });
    parts.add("runners", {
      stop: () => Promise.all([...this.runners.values()].map((r) => r.close?.())),
    });
    this.sweeper = new Sweeper(store, topo.js, topo.jsm, this.log, {
      intervalMs: cfg.sweepIntervalMs,
      minAgeMs: Math.max(cfg.leaseMs, 5_000),
      retentionMs: cfg.taskRetentionMs,
      elected: () => this.sweeping,
      liveWorkers: async () =>
        this.directory?.state === "running"
          ? [...(this.liveWorkers() ?? [])]
          : listWorkers(topo.workers, topo.jsm, cfg.presenceTtlMs),
      watchMs: cfg.presenceIntervalMs,
      onSettled: (r, notices) => {
        events.announce(r, notices, {
          onState: (to) => this.observer.transition({ pool: r.spec.pool, to }),
        });
        void settled(r).catch(() => undefined);
      },
      plans,
    });
    if (cfg.webhooks.length > 0) {
      const hooks = new WebhookDeliverer({
        js: topo.js,
        jsm: topo.jsm,
        log: this.log,
        hooks: cfg.webhooks,
        userAgent: `agent-mesh/${VERSION}`,
      });
      await parts.start("webhooks", hooks);
    }
    for (const p of this.plugins)
      await parts.start(p.name, { start: () => p.start(this), stop: () => p.stop() });
    await parts.start("presence", this.presence);
    this.directory = new WorkerDirectory(topo.workers, topo.jsm, {
      refreshMs: cfg.presenceIntervalMs,
      staleMs: cfg.presenceTtlMs,
      log: this.log,
    });
    await parts.start("worker directory", this.directory);
    await parts.start("claim loop", this.loop);
    await parts.start("sweeper", this.sweeper);
    if (this.lostWhileStarting) throw this.lostWhileStarting;
    this.log.info(
      {
        pools: cfg.pools,
        labels: cfg.labels,
        slots: cfg.slots,
        runners: [...this.runners.keys()],
        nats: cfg.nats.servers,
      },
      "meshd started",
    );
  }

  private async watchConnection(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "reconnect")
        this.log.info({ nats: s.type }, "NATS connection");
      // Pull requests do not survive a reconnect (the server may have restarted): pull anew.
      if (s.type === "reconnect") for (const p of this.pullers.values()) p.abandonAll();
    }
  }

  /** Starts every part in order; a part it cannot live without dying meanwhile fails the start. */
  override async start(): Promise<void> {
    await super.start();
    // Lost between the last part's start and "running": die now.
    if (this.lostWhileStarting) this.lost(this.lostWhileStarting);
  }

  /** A part the daemon cannot live without died: stop now (running tasks handed back at once). */
  private lost(err: MeshError): void {
    if (this.state === "starting") {
      this.lostWhileStarting ??= err;
      return;
    }
    if (this.state !== "running") return;
    this.graceMs = 0;
    void this.life.die(err);
  }

  /**
   * Graceful stop: no new claims; running tasks get `graceMs` (the first call's) to finish, then
   * are aborted and handed back to the queue for another worker. Memoized.
   */
  override stop(graceMs?: number): Promise<void> {
    if (graceMs !== undefined && this.state !== "stopping") this.graceMs = graceMs;
    return super.stop();
  }

  /** Second Ctrl-C: abort running tasks now (they are still handed back) and finish stopping. */
  async force(): Promise<void> {
    await this.loop?.abortAll("shutdown");
  }

  /**
   * The early conflict check of plans, when the workspaces are the daemon's own (git caches)
   * and the bucket of plan branches can be made; without it plans run unchecked.
   */
  private async planCheck(workspaces: WorkspaceProvider): Promise<PlanCheck | undefined> {
    const { topo, nc } = this;
    if (!(workspaces instanceof MeshWorkspaces) || !topo || !nc) return undefined;
    const branches = await PlanBranchStore.open(topo, {
      replicas: this.config.nats.replicas,
      ttlMs: this.config.taskRetentionMs * 2,
    }).catch((err: unknown) => {
      this.log.warn({ err: errorMessage(err) }, "running without the early conflict check of plans");
      return undefined;
    });
    if (!branches) return undefined;
    return new PlanCheck({
      branches,
      git: workspaces.git,
      publish: (subject, event) => {
        try {
          nc.publish(subject, JSON.stringify(event));
        } catch (err) {
          this.log.debug({ err: errorMessage(err), subject }, "could not publish a plan event");
        }
      },
      observer: this.observer,
      log: this.log,
      workerId: this.workerId,
    });
  }

  /** Stops every part in reverse order of start, each one even when another fails; NATS last. */
  protected async onStop(): Promise<void> {
    this.log.info({ graceMs: this.graceMs, running: this.runningTaskIds.length }, "stopping: no new claims");
    // Tell the mesh at once that this worker drains (the snapshot says so while stopping).
    if (this.nc && !this.nc.isClosed()) void this.presence?.beat();
    await this.loop?.stop(this.graceMs);
    await this.parts.stopAll();
    this.log.info("meshd stopped");
  }
}

/** Whether a `quota` config declares any cap. */
function hasCaps(q: DaemonConfig["quota"]): boolean {
  return Object.keys(q.accounts).length + Object.keys(q.pools).length + Object.keys(q.resources).length > 0;
}
