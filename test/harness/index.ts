// The test harness surface: integration tests import from here, not from the files behind it.
export {
  containerRuntimeAvailable,
  findNatsServerBinary,
  freePort,
  NATS_BIN_ENV,
  NATS_CONTAINER_ENV,
  NATS_LOG_ENV,
  NatsCluster,
  type NatsClusterOptions,
  NatsServer,
  NatsServerNotFoundError,
  type NatsServerOptions,
  NatsServerStartError,
} from "./nats-server.js";
export { isAlive } from "./process.js";
export { makeTempDir, removeTempDir, removeTempDirs } from "./tmp.js";
export { Deferred, settledWithin, type WaitForOptions, waitFor, withTimeout } from "./wait.js";
