/** Public surface of the quota folder (issue 15): caps, leased slots in `mesh-slots`, the gate attempts pass. */
export {
  type AttemptNeeds,
  type CapKind,
  type EffectiveCaps,
  effectiveCaps,
  type Need,
  needsOf,
  parseSlotKey,
  type QuotaDecl,
  slotKey,
  startsKey,
} from "./caps.js";
export { type HeldSlots, QuotaGate, type QuotaGateDeps, type Taken, type Wait } from "./gate.js";
export { recordLiveness } from "./liveness.js";
export { openSlotsBucket } from "./open.js";
export { type Holder, type Liveness, type SlotDoc, SlotStore, type StartsDoc } from "./slot-store.js";
export { accountStateReader } from "./account-state.js";
export { type AccountState, type QuotaEntry, quotaView, type QuotaViewDeps } from "./view.js";
