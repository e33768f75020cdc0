/**
 * The daemon: composes the rooms (NATS topology, presence registry, claim loop, runners,
 * sweeper, servers) and owns their lifecycle. start() refuses a second start; stop() is
 * idempotent: stop intake, let running tasks finish within the grace period, then hand the
 * rest back to the queue.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdir } from "node:fs/promises";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { makeRedactor, type Redactor } from "../agent-shim/index.js";
import type { MeshApi } from "./api/mesh-api.js";
import { NatsLeaseBeacon } from "./claim/beacon.js";
import { Claimer } from "./claim/claim.js";
import { ClaimLoop } from "./claim/claim-loop.js";
import { Execution } from "./claim/execution.js";
import type { DaemonConfig } from "./config.js";
import { isMeshError, MeshError } from "./errors.js";
import { createLogger, type Logger } from "./log.js";
import { type MeshObserver, noopObserver } from "./metrics/observer.js";
import { connectNats } from "./nats/connect.js";
import type { Delivery } from "./queue/delivery.js";
import { Puller } from "./queue/puller.js";
import { Sweeper } from "./queue/sweeper.js";
import { ensureTopology, poolConsumerName, TASKS_STREAM, type Topology } from "./queue/topology.js";
import { WorkerDirectory } from "./registry/directory.js";
import { listWorkers, Presence } from "./registry/presence.js";
import type { WorkerInfo } from "./registry/worker-info.js";
import type { Runner } from "./runner/runner.js";
import { defaultRunners, defaultWorkspaces } from "./runtime.js";
import { daemonSecrets } from "./secrets.js";
import { cancelSubject, MeshService } from "./service.js";
import { guardRunner, guardWorkspaces } from "./task-guard.js";
import { EventPublisher } from "./tasks/event-publisher.js";
import { TaskStore } from "./tasks/store.js";
import { Slots } from "./util/slots.js";
import { VERSION } from "./version.js";
import { BundleStore, MeshTransfer } from "./transfer/index.js";
import { Git, keepBranchWhileTaskLives } from "./workspace/index.js";

const BUILTIN_RUNNERS = ["claude", "command", "noop"] as const;

import type { WorkspaceProvider } from "./workspace/workspace.js";

export type DaemonState = "new" | "starting" | "running" | "stopping" | "stopped" | "failed";

export interface DaemonDeps {
  logger?: Logger;
  /** Runners by kind; defaults to the built-in runners enabled in config. */
  runners?: Runner[];
  workspaces?: WorkspaceProvider;
  observer?: MeshObserver;
}

/** A running daemon's side servers (gRPC, HTTP) plug in here. */
export interface DaemonPlugin {
  readonly name: string;
  start(d: Daemon): Promise<void>;
  stop(): Promise<void>;
}

export class Daemon {
  readonly workerId: string;
  readonly log: Logger;
  private _state: DaemonState = "new";
  private nc: NatsConnection | undefined;
  private topo: Topology | undefined;
  private loop: ClaimLoop | undefined;
  private readonly pullers = new Map<string, Puller>();
  private presence: Presence | undefined;
  private directory: WorkerDirectory | undefined;
  private sweeper: Sweeper | undefined;
  private service: MeshService | undefined;
  private events: EventPublisher | undefined;
  private _transfer: MeshTransfer | undefined;
  private cancelSub: Subscription | undefined;
  private beacon: NatsLeaseBeacon | undefined;
  private stopping: Promise<void> | undefined;
  private readonly slots: Slots;
  readonly observer: MeshObserver;
  private readonly runners = new Map<string, Runner>();
  private readonly redact: Redactor;
  /** Runners not offered here, and why (shown by `mesh workers` and `mesh task`). */
  private readonly unavailableRunners = new Map<string, string>();
  private readonly startedAt = new Date().toISOString();
  private readonly plugins: DaemonPlugin[] = [];
  /** Extra presence fields set by plugins (e.g. the HTTP server's URL). */
  readonly presenceExtras: Partial<WorkerInfo> = {};

  constructor(
    readonly config: DaemonConfig,
    private readonly deps: DaemonDeps = {},
  ) {
    this.workerId = `${config.name}-${randomBytes(4).toString("hex")}`;
    this.log = deps.logger ?? createLogger(config.logLevel, { workerId: this.workerId });
    this.slots = new Slots(config.slots);
    this.observer = deps.observer ?? noopObserver;
    // The daemon's secret values, masked in whatever its runners report.
    this.redact = makeRedactor(daemonSecrets(config));
    for (const r of deps.runners ?? defaultRunners(config, this.log, this.redact, this.observer)) {
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

  get state(): DaemonState {
    return this._state;
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
    if (this._state !== "running" || !this.directory) return false;
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
    return this._state === "running" && this.nc !== undefined && !this.nc.isClosed();
  }

  use(plugin: DaemonPlugin): this {
    if (this._state !== "new") throw new Error("plugins are added before start()");
    this.plugins.push(plugin);
    return this;
  }

  private setState(s: DaemonState): void {
    this.log.debug({ from: this._state, to: s }, "daemon state");
    this._state = s;
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
      ...(this._state === "stopping" ? { draining: true } : {}),
      ...(this.sweeper?.lastPassAt ? { sweptAt: this.sweeper.lastPassAt.toISOString() } : {}),
      ...(this.unavailableRunners.size > 0
        ? {
            unavailableRunners: [...this.unavailableRunners].map(([runner, reason]) => ({ runner, reason })),
          }
        : {}),
      ...this.presenceExtras,
    };
  }

  async start(): Promise<void> {
    if (this._state !== "new") throw new Error(`daemon already ${this._state}`);
    this.setState("starting");
    const cfg = this.config;
    try {
      await mkdir(cfg.stateDir, { recursive: true, mode: 0o700 });
      // The socket, worktrees and agent transcripts live here: private to this user.
      await chmod(cfg.stateDir, 0o700).catch((err) =>
        this.log.warn({ err, stateDir: cfg.stateDir }, "cannot make the state dir private"),
      );
      this.nc = await connectNats(cfg.nats, `meshd ${this.workerId}`);
      void this.watchConnection(this.nc);
      this.topo = await ensureTopology(this.nc, {
        replicas: cfg.nats.replicas,
        leaseMs: cfg.leaseMs,
        presenceTtlMs: cfg.presenceTtlMs,
        ...(cfg.nats.domain ? { domain: cfg.nats.domain } : {}),
        eventsMaxBytes: cfg.limits.eventsMaxBytes,
        eventsMaxAgeMs: cfg.limits.eventsMaxAge,
        tasksMaxBytes: cfg.limits.tasksMaxBytes,
        log: this.log,
      });
      for (const pool of cfg.pools) await this.topo.consumer(pool);
      // Without room for the bundle store the daemon still runs tasks on URL repos; shipped
      // (mesh://) repos then fail on it with the reason.
      const bundles = await BundleStore.open(this.topo.js, this.nc.info?.max_payload ?? 1024 * 1024, {
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
          this.log.warn(
            { key: u.key, revision: u.revision, why: u.reason },
            "unreadable task record skipped",
          );
        },
      });
      this.events = new EventPublisher(this.nc, this.log);
      const events = this.events;
      this.service = new MeshService({
        nc: this.nc,
        js: topo.js,
        publisher: topo.publisher,
        jsm: topo.jsm,
        store,
        workersKv: topo.workers,
        events,
        log: this.log,
        presenceTtlMs: cfg.presenceTtlMs,
        observer: this.observer,
        policy: cfg.taskPolicy,
        capacity: topo.tasksCapacity,
      });
      const workspaces = guardWorkspaces(
        this.deps.workspaces ??
          defaultWorkspaces(cfg, this.log, {
            keepBranch: keepBranchWhileTaskLives(
              async (id) => (await store.get(id))?.record,
              cfg.taskRetentionMs,
            ),
            ...(this._transfer ? { transfer: this._transfer } : {}),
          }),
        cfg.taskPolicy,
      );
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
          startsAtClaim: (spec) => !spec.repo || this.runners.get(spec.runner)?.needsWorkspace === false,
          servedByAnother: (pool, labels, runner) =>
            this.directory?.servedByAnother(this.workerId, pool, labels, runner) ?? true,
        },
      );
      const beacon = new NatsLeaseBeacon(this.nc);
      this.beacon = beacon;
      beacon.listen((id, revision) => claimer.observed(id, revision));
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
          }
          return p;
        },
        events,
        log: this.log,
        observer: this.observer,
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
              beacon,
            },
            d.claimed,
            msg,
          );
        },
      });
      this.presence = new Presence(topo.workers, () => this.snapshot(), cfg.presenceIntervalMs, this.log);
      this.cancelSub = this.nc.subscribe(cancelSubject("*"), {
        callback: (_err, m) => {
          const id = m.subject.slice(m.subject.lastIndexOf(".") + 1);
          if (this.loop?.cancel(id)) this.log.info({ taskId: id }, "cancel requested");
        },
      });
      this.sweeper = new Sweeper(store, topo.js, topo.jsm, this.log, {
        intervalMs: cfg.sweepIntervalMs,
        minAgeMs: Math.max(cfg.leaseMs, 5_000),
        retentionMs: cfg.taskRetentionMs,
        elected: () => this.sweeping,
        liveWorkers: () => listWorkers(topo.workers, topo.jsm, cfg.presenceTtlMs),
        watchMs: cfg.presenceIntervalMs,
        onSettled: (r) => {
          this.observer.transition({ pool: r.spec.pool, to: r.state });
          events.publish({
            type: "state",
            taskId: r.id,
            at: r.updatedAt,
            state: r.state,
            attempt: r.attempt,
            ...(r.reason ? { reason: r.reason } : {}),
          });
        },
      });
      for (const p of this.plugins) await p.start(this);
      this.setState("running");
      await this.presence.start();
      this.directory = new WorkerDirectory(topo.workers, topo.jsm, {
        refreshMs: cfg.presenceIntervalMs,
        staleMs: cfg.presenceTtlMs,
        log: this.log,
      });
      await this.directory.start();
      this.loop.start();
      this.sweeper.start();
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
    } catch (err) {
      this.setState("failed");
      await this.closeAll();
      throw err;
    }
  }

  private async watchConnection(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "reconnect")
        this.log.info({ nats: s.type }, "NATS connection");
      // Pull requests do not survive a reconnect (the server may have restarted): pull anew.
      if (s.type === "reconnect") for (const p of this.pullers.values()) p.abandonAll();
    }
  }

  /**
   * Graceful stop: no new claims; running tasks get `graceMs` to finish, then are aborted and
   * handed back to the queue for another worker. Idempotent and memoized.
   */
  stop(graceMs = this.config.shutdownGraceMs): Promise<void> {
    this.stopping ??= this.doStop(graceMs);
    return this.stopping;
  }

  /** Second Ctrl-C: abort running tasks now (they are still handed back) and finish stopping. */
  async force(): Promise<void> {
    await this.loop?.abortAll("shutdown");
  }

  private async doStop(graceMs: number): Promise<void> {
    if (this._state === "new") {
      this.setState("stopped");
      return;
    }
    this.setState("stopping");
    this.log.info({ graceMs, running: this.runningTaskIds.length }, "stopping: no new claims");
    await this.loop?.stopIntake();
    void this.presence?.beat();
    if (this.loop && this.loop.running.size > 0) {
      const all = await this.loop.drain(graceMs);
      if (!all)
        this.log.warn({ running: this.runningTaskIds }, "grace period over: handing running tasks back");
    }
    await this.loop?.abortAll("shutdown");
    await this.closeAll();
    this.setState("stopped");
    this.log.info("meshd stopped");
  }

  /** Runs every cleanup even when one fails. */
  private async closeAll(): Promise<void> {
    const steps: Array<[string, () => Promise<unknown> | unknown]> = [
      ["sweeper", () => this.sweeper?.stop()],
      ["worker directory", () => this.directory?.stop()],
      ...this.plugins.map((p): [string, () => Promise<void>] => [p.name, () => p.stop()]),
      ["presence", () => this.presence?.stop()],
      ["runners", () => Promise.all([...this.runners.values()].map((r) => r.close?.()))],
      ["cancel subscription", () => this.cancelSub?.unsubscribe()],
      ["lease beacon", () => this.beacon?.stop()],
      ["events", () => this.events?.flush()],
      ["nats", () => (this.nc && !this.nc.isClosed() ? this.nc.drain() : undefined)],
      ["publisher", () => this.topo?.publisher.close()],
      ["pullers", () => [...this.pullers.values()].map((p) => p.close())],
    ];
    for (const [name, step] of steps) {
      try {
        await step();
      } catch (err) {
        this.log.warn({ err, step: name }, "cleanup step failed");
      }
    }
  }
}
