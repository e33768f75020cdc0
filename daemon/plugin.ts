/**
 * What a plugin (the gRPC and HTTP servers, metrics) sees of the running daemon: the few things
 * it reads, and the one it writes (its presence fields). The daemon is one; plugins never get
 * the daemon itself, so they cannot reach into its claim loop, store or lifecycle.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { MeshApi } from "./api/index.js";
import type { DaemonConfig } from "./config.js";
import type { Logger } from "./log.js";
import type { QuotaEntry } from "./quota/index.js";
import type { WorkerInfo } from "./registry/index.js";
import type { MeshTransfer } from "./transfer/index.js";

export interface PluginContext {
  readonly workerId: string;
  readonly log: Logger;
  readonly config: Pick<DaemonConfig, "host" | "pools"> & { claude: Pick<DaemonConfig["claude"], "model"> };
  /** The daemon's lifecycle state, for readiness reports. */
  readonly state: string;
  /** Running and connected to NATS. */
  readonly ready: boolean;
  /** The mesh API (what the gRPC server serves). */
  readonly api: MeshApi;
  /** Code and results over the bus (absent without room for the bundle store). */
  readonly transfer: MeshTransfer | undefined;
  /** What `mesh quota` shows: the mesh's caps, slots in use and by whom, account states. */
  quotaEntries(): Promise<QuotaEntry[]>;
  readonly slotsInfo: { total: number; busy: number };
  readonly runningTaskIds: readonly string[];
  /** JetStream reads (queue depth, consumer health). */
  readonly topology: { readonly jsm: JetStreamManager };
  /** The NATS connection's status events. */
  readonly connection: Pick<NatsConnection, "status">;
  /** The runners this worker offers (as in its presence record). */
  snapshot(): Pick<WorkerInfo, "runners">;
  /** Presence fields a plugin adds (the HTTP server's URL). */
  readonly presenceExtras: Pick<Partial<WorkerInfo>, "httpUrl" | "httpUrls" | "reach">;
}

/** A running daemon's side servers (gRPC, HTTP) and metrics plug in here. */
export interface DaemonPlugin {
  readonly name: string;
  start(ctx: PluginContext): Promise<void>;
  stop(): Promise<void>;
}
