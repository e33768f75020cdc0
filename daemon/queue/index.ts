/** Public surface of the queue folder: topology, doorbells, the index of parked tasks, the puller and its deliveries, the sweeper. */
export type { Delivery } from "./delivery.js";
export { doorbellIds, doorbellSnapshot, doorbellTaskId, readDoorbell, ringDoorbell } from "./doorbell.js";
export { markParked, type ParkedIndex, parkedIds, readParked, unmarkParked } from "./parked.js";
export { Puller } from "./puller.js";
export { Sweeper } from "./sweeper.js";
export { ensureTopology, type Topology } from "./topology.js";
