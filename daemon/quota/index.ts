/** Public surface of the quota folder (issue 15): caps and leased slots in `mesh-slots`, the gate attempts pass, and account usage limits in `mesh-accounts`. */
export { accountStateReader } from "./account-reader.js";
export {
  AccountBook,
  type AccountBookOptions,
  type AccountEvent,
  openAccountsBucket,
  readAccountStates,
} from "./account-book.js";
export {
  ACCOUNT_NAME_RE,
  type AccountLimit,
  type AccountState,
  type AccountStateName,
  isActive,
  jitterCap,
  nextAccountState,
  parseAccountState,
  stateAt,
} from "./account-state.js";
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
export { PARK_SPREAD_MS, parkedUntil } from "./park.js";
export { type Holder, type Liveness, type SlotDoc, SlotStore, type StartsDoc } from "./slot-store.js";
export { type AccountStateView, type QuotaEntry, quotaView, type QuotaViewDeps } from "./view.js";
