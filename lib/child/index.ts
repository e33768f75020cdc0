export { LineQueue, type OutputLine, onBoundedLines } from "./bounded-lines.js";
export { GUARD_FD, guardianAvailable } from "./guardian.js";
export {
  type Child,
  type ChildExit,
  type ParentDeath,
  parentDeathSignalAvailable,
  type SpawnOptions,
  signalGroup,
  spawnChild,
} from "./spawn.js";
