/**
 * lib/lifecycle: the contract every long-running part keeps (a guarded start, a memoized stop
 * that waits for work in progress, `closed`, `await using`, a death that stops the part), and
 * the order a PartGroup stops its parts in. Pure: no server needed.
 */
import pino from "pino";
import { describe, expect, it } from "vitest";
import { Lifecycle, LifecycleError, Part, PartGroup } from "../lib/lifecycle.js";
import { Deferred, settledWithin } from "./harness/index.js";

const silent = pino({ level: "silent" });

class Counter extends Part {
  starts = 0;
  stops = 0;
  constructor(private readonly failStart?: Error) {
    super("counter", silent);
  }
  protected onStart(): void {
    this.starts++;
    if (this.failStart) throw this.failStart;
  }
  protected onStop(): void {
    this.stops++;
  }
  work<T>(p: Promise<T>): Promise<T> {
    return this.life.track(p);
  }
  die(err: unknown): Promise<void> {
    return this.life.die(err);
  }
}

describe("the lifecycle contract", () => {
  it("refuses a second start with a coded error", async () => {
    const c = new Counter();
    await c.start();
    expect(c.state).toBe("running");
    const err = await c.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LifecycleError);
    expect(err).toMatchObject({ code: "FAILED_PRECONDITION", component: "counter" });
    expect(c.starts).toBe(1);
    await c.stop();
    await expect(c.start()).rejects.toMatchObject({ code: "FAILED_PRECONDITION" });
  });

  it("stop waits for work in progress", async () => {
    const c = new Counter();
    await c.start();
    const job = new Deferred<void>();
    void c.work(job.promise);
    const stopped = c.stop();
    expect(await settledWithin(stopped)).toBe(false);
    expect(c.state).toBe("stopping");
    job.resolve();
    await stopped;
    expect(c.state).toBe("stopped");
    await expect(c.closed).resolves.toBeUndefined();
  });

  it("a double stop is one stop", async () => {
    const c = new Counter();
    await c.start();
    const a = c.stop();
    const b = c.stop();
    expect(b).toBe(a);
    await Promise.all([a, b, c.stop()]);
    expect(c.stops).toBe(1);
  });

  it("a stop asked for while starting runs once the start is done", async () => {
    const gate = new Deferred<void>();
    const order: string[] = [];
    const life = new Lifecycle("slow", silent, {
      start: async () => {
        await gate.promise;
        order.push("started");
      },
      stop: () => {
        order.push("stopped");
      },
    });
    const started = life.start();
    const stopped = life.stop();
    gate.resolve();
    await Promise.all([started, stopped]);
    expect(order).toEqual(["started", "stopped"]);
  });

  it("disposes with await using", async () => {
    let c: Counter | undefined;
    {
      await using part = new Counter();
      c = part;
      await part.start();
    }
    expect(c.state).toBe("stopped");
    expect(c.stops).toBe(1);
  });

  it("a part that dies stops, and closed holds the error", async () => {
    const c = new Counter();
    await c.start();
    const err = Object.assign(new Error("connection closed for good"), { code: "UNAVAILABLE" });
    await c.die(err);
    expect(c.state).toBe("failed");
    expect(c.stops).toBe(1);
    await expect(c.closed).rejects.toBe(err);
    // A death while stopping (one the stop caused) is no error.
    const d = new Counter();
    await d.start();
    const stopping = d.stop();
    await d.die(new Error("subscription closed by the stop"));
    await stopping;
    await expect(d.closed).resolves.toBeUndefined();
  });

  it("a failed start cleans up and rejects closed; a never started part stops at once", async () => {
    const boom = new Error("cannot listen");
    const c = new Counter(boom);
    await expect(c.start()).rejects.toBe(boom);
    expect(c.state).toBe("failed");
    expect(c.stops).toBe(1);
    await expect(c.closed).rejects.toBe(boom);
    const n = new Counter();
    await n.stop();
    expect([n.state, n.stops]).toEqual(["stopped", 0]);
  });

  it("a PartGroup stops in reverse order of start, each part even when one fails", async () => {
    const order: string[] = [];
    const group = new PartGroup(silent);
    group.add("nats", { stop: () => order.push("nats") });
    await group.start("presence", {
      start: async () => undefined,
      stop: () => {
        order.push("presence");
        throw new Error("presence stop failed");
      },
    });
    group.add("sweeper", { stop: async () => order.push("sweeper") });
    await group.stopAll();
    expect(order).toEqual(["sweeper", "presence", "nats"]);
  });
});
