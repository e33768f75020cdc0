/**
 * Binds MeshMetrics to a running daemon (through its plugin context): the scrape-time source (slots, running tasks, queue
 * depth from JetStream, presence) and the NATS connection's status events.
 */
import { isMeshError } from "../errors.js";
import type { DaemonPlugin, PluginContext } from "../plugin.js";
import { VERSION } from "../version.js";
import type { LiveSource } from "./live-metrics.js";
import type { MeshMetrics } from "./mesh-metrics.js";
import { readMeshQueueStats } from "./queue-stats.js";

export function daemonSource(d: PluginContext): LiveSource {
  return {
    workerId: d.workerId,
    host: d.config.host,
    version: VERSION,
    pools: d.config.pools,
    agentModels:
      d.config.claude.model && d.snapshot().runners.includes("claude") ? [d.config.claude.model] : [],
    slots: () => d.slotsInfo,
    running: () => d.runningTaskIds.length,
    ready: () => d.ready,
    queues: () => readMeshQueueStats(d.topology.jsm, d.config.pools),
    workers: () => d.api.listWorkers(),
    quota: () => d.quotaEntries(),
    parkedHere: async (taskId) => {
      try {
        const { record } = await d.api.getTask(taskId);
        return record.state === "queued" && record.parked?.workerId === d.workerId;
      } catch (err) {
        return isMeshError(err, "NOT_FOUND") ? false : undefined;
      }
    },
  };
}

export function metricsPlugin(metrics: MeshMetrics): DaemonPlugin {
  return {
    name: "metrics",
    async start(d) {
      metrics.bind(daemonSource(d));
      // The core does not report NATS status to its observer; this plugin does. The iterator
      // ends when the daemon closes its connection, after every plugin has stopped.
      const status = d.connection.status();
      void (async () => {
        for await (const s of status) metrics.natsStatus({ type: s.type });
      })().catch((err) => d.log.debug({ err }, "NATS status watch ended"));
    },
    async stop() {},
  };
}
