/**
 * Issue 15 §2/§4: an account's start-rate cap (`startsPerMinute`) held mesh-wide. Three meshd
 * processes with six local slots between them run the real Claude Code (mock API) on one
 * account capped at 3 starts a minute; five sessions are submitted at once. The mock API's own
 * log of when each session's first request arrived decides: three start, the other two wait
 * (queued, not failed) until the minute of the first starts has passed, then run; every task
 * succeeds once.
 *
 * The log can only bound the gate's start times from one side (a session reaches the API a
 * moment after its start is counted), so the exact check is against the submission: every
 * start counted is after it, so the k-th session to reach the API (k from 0) does so at least
 * floor(k / 3) minutes after the submission.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { validateTaskSpec } from "../daemon/tasks/spec.js";
import { pause } from "../daemon/util/abort.js";
import { makeTempDir, NatsServer, waitFor } from "./harness/index.js";
import { answer, FAKE_API_KEY, startMockAnthropic } from "./mock-anthropic/index.js";
import { openClient, waitForState } from "./support/mesh.js";
import { startClaudeFleet } from "./support/quota.js";
import { uniqueId } from "./support/tasks.js";

const PER_MINUTE = 3;
const TASKS = 5;
const MINUTE = 60_000;

let cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await Promise.resolve(c()).catch(() => undefined);
  cleanup = [];
});

describe("quota: an account's start-rate cap across daemons (the real Claude Code, mock API)", () => {
  it("starts no more sessions a minute than startsPerMinute on any set of daemons; the rest wait and then run", async () => {
    const nats = await NatsServer.start();
    cleanup.push(() => nats.cleanup());
    const client = await openClient([nats.url]);
    cleanup.push(() => client.close());
    // The independent log: when each conversation's first request reached the API.
    const firstSeen = new Map<string, number>();
    const mock = await startMockAnthropic({
      script: (ctx) => {
        if (!firstSeen.has(ctx.conversation)) firstSeen.set(ctx.conversation, Date.now());
        return answer("done");
      },
    });
    cleanup.push(() => mock.close());
    const keyFile = join(await makeTempDir("quota-key-"), "key");
    await writeFile(keyFile, `${FAKE_API_KEY}\n`, { mode: 0o600 });
    const fleet = await startClaudeFleet(nats.url, {
      quota: { accounts: { team: { startsPerMinute: PER_MINUTE } } },
      apiUrl: mock.url,
      keyFile,
    });
    for (const p of fleet.values()) cleanup.push(() => p.kill("SIGKILL"));
    await waitFor(() => client.api.listWorkers().then((ws) => ws.length === 3), {
      name: "three workers up",
      timeoutMs: 60_000,
    });

    const specs = Array.from({ length: TASKS }, (_, i) =>
      validateTaskSpec({ id: uniqueId("qs"), prompt: `session ${i}`, pool: "qc", maxAttempts: 1 }),
    );
    const submittedAt = Date.now();
    await client.api.submit(specs);

    // The first minute's starts run and finish.
    await waitFor(
      async () => {
        const states = await Promise.all(specs.map((s) => client.api.getTask(s.id)));
        return states.filter((v) => v.record.state === "succeeded").length === PER_MINUTE;
      },
      { name: `${PER_MINUTE} sessions done`, timeoutMs: 50_000 },
    );
    await pause(2000); // proving that no further session starts within the minute
    const seen = firstSeen.size;
    const waiting = await Promise.all(specs.map((s) => client.api.getTask(s.id)));
    // (On a machine so slow that the minute passed meanwhile, the rest may have started.)
    if (Date.now() < submittedAt + MINUTE) {
      expect(seen).toBe(PER_MINUTE);
      // The rest wait unclaimed or handed back: not failed, no attempt used up.
      const rest = waiting.filter((v) => v.record.state !== "succeeded");
      expect(rest).toHaveLength(TASKS - PER_MINUTE);
      for (const v of rest) expect(v.record.state).toBe("queued");
    }

    // After the minute, the rest run; none failed or ran twice.
    const done = await Promise.all(
      specs.map((s) => waitForState(client.api, s.id, ["succeeded", "failed", "dead", "cancelled"], 150_000)),
    );
    for (const v of done) {
      expect(v.record.state).toBe("succeeded");
      expect(v.record.attempts.filter((a) => a.outcome === "succeeded")).toHaveLength(1);
    }
    const starts = [...firstSeen.values()].sort((a, b) => a - b);
    console.log(
      `quota starts: ${starts.map((t) => `+${t - submittedAt}ms`).join(" ")} (cap ${PER_MINUTE}/min)`,
    );
    expect(starts).toHaveLength(TASKS);
    starts.forEach((t, k) => {
      expect(t).toBeGreaterThanOrEqual(submittedAt + Math.floor(k / PER_MINUTE) * MINUTE);
    });
  }, 180_000);
});
