/**
 * Baseline worker for the `claims` benchmark: raw JetStream, no mesh. `lanes` concurrent loops
 * share one durable pull consumer, each: next() one message, ackAck(), report its latency.
 * Usage: node raw-worker.js <natsUrl> <stream> <consumer> <lanes>
 */
import { runLanes } from "./lanes.js";

const [url, stream, consumerName, lanesArg] = process.argv.slice(2);
await runLanes(url!, stream!, consumerName!, Number(lanesArg ?? 4), async (m) => {
  const latency = Date.now() - Number(m.json<{ t: number }>().t);
  await m.ackAck().catch(() => undefined);
  return latency;
});
