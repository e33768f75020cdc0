/** The slot semaphore (daemon/util/slots.ts): waiters in order; an aborted waiter gives its turn up. */
import { describe, expect, it } from "vitest";
import { Slots } from "../daemon/util/slots.js";

describe("Slots", () => {
  it("a release wakes a live waiter, not one whose signal aborted", async () => {
    const slots = new Slots(1);
    const live = new AbortController();
    const gone = new AbortController();
    expect(await slots.acquire(live.signal)).toBe(true);
    const first = slots.acquire(gone.signal);
    const second = slots.acquire(live.signal);
    gone.abort();
    expect(await first).toBe(false);
    slots.release();
    expect(await second).toBe(true);
    expect(slots.busy).toBe(1);
  });

  it("refuses at once when the signal is already aborted", async () => {
    const slots = new Slots(1);
    const ac = new AbortController();
    ac.abort();
    expect(await slots.acquire(ac.signal)).toBe(false);
    expect(slots.free).toBe(1);
  });
});
