/**
 * The port through which an attempt meets its account's usage limits (quota/AccountBook
 * implements it): whether a session may start now, recording a limit a session met, and
 * where a parked task resumes. Only runners that start agent sessions have an account.
 */
import type { AccountLimit, AccountState } from "../quota/index.js";
import type { TaskSpec } from "../tasks/index.js";

export interface AccountLimits {
  /** The account the task's sessions run under; undefined for runners that start none. */
  accountOf(spec: TaskSpec): string | undefined;
  /** How long new sessions of `account` still wait here (0: start now). */
  pausedMs(account: string): number;
  /** Records a limit a session met (compare-and-set); the state written, if any. */
  report(account: string, limit: AccountLimit): Promise<AccountState | undefined>;
  /** The account's recorded state. */
  state(account: string): AccountState | undefined;
  /** The most any daemon's pause outlasts a reset (a parked task resumes after it). */
  jitterMs: number;
  /** A rejection without a reset time pauses the account this long. */
  fallbackPauseMs: number;
}
