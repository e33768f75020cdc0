/** Public surface of the metrics folder. */
export { AgentMetrics, type AgentMetricsOptions } from "./agent-metrics.js";
export { daemonSource, metricsPlugin } from "./daemon-plugin.js";
export { LiveMetrics, type LiveSource } from "./live-metrics.js";
export { MeshMetrics, type MeshMetricsOptions } from "./mesh-metrics.js";
export { type QueueStats, readMeshQueueStats, readQueueStats } from "./queue-stats.js";
export { TaskMetrics } from "./task-metrics.js";
