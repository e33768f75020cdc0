/**
 * When a parked task (its attempt met the account's limit) may start again: after the reset,
 * after every daemon's jitter (so the gate is open everywhere first), and in submission order:
 * an earlier-submitted task gets an earlier time. The spread maps the task's age at the reset
 * onto (0, PARK_SPREAD_MS], strictly decreasing with age, so the order holds for any ages.
 */
export const PARK_SPREAD_MS = 1_000;
const AGE_SCALE_MS = 60_000;

/** Epoch ms from which the parked task may be claimed. */
export function parkedUntil(untilMs: number, jitterMs: number, submittedAt: string): number {
  const age = Math.max(0, untilMs - Date.parse(submittedAt));
  const spread = (PARK_SPREAD_MS * AGE_SCALE_MS) / (AGE_SCALE_MS + age);
  return untilMs + jitterMs + Math.round(spread);
}
