/** Public surface of the registry folder: presence, the worker directory, what a worker serves. */
export { WorkerDirectory } from "./directory.js";
export { listWorkers, Presence, sortWorkers } from "./presence.js";
export { unschedulableReason } from "./unschedulable.js";
export { type WorkerInfo, workerServes } from "./worker-info.js";
