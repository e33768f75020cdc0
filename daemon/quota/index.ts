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
export { PARK_SPREAD_MS, parkedUntil } from "./park.js";
