/** Public surface of the transfer folder: git bundles in a JetStream Object Store (issue 13 §1, §2). */
export {
  type BundleEntry,
  BundleStore,
  type BundleStoreOptions,
  DEFAULT_CHUNK_BYTES,
  indexKey,
} from "./bundle-store.js";
export { ensureCommit } from "./ensure.js";
export { fetchedRef } from "./fetch.js";
export { bundleName, type ShipResult, shipRepo } from "./ship.js";
export { type FetchedResult, type FetchRequest, MeshTransfer, type TaskSource } from "./transfer.js";
