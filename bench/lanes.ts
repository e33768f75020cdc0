/**
 * The loop both baseline workers share: connect, then `lanes` concurrent loops on one durable
 * pull consumer, each taking one message at a time with next() and handing it to `handle`, until
 * SIGTERM. A handler returns the latency to report, or undefined; each report is one line on
 * stdout, "<latency ms> <finished at, epoch ms>". An idle pull waits 5 s, as a daemon's does.
 */
import { type JetStreamClient, type JsMsg, jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";

export async function runLanes(
  url: string,
  stream: string,
  consumerName: string,
  lanes: number,
  handle: (m: JsMsg, js: JetStreamClient) => Promise<number | undefined>,
): Promise<void> {
  const nc = await connect({ servers: url });
  const js = jetstream(nc);
  const consumer = await js.consumers.get(stream, consumerName);
  let stop = false;
  process.on("SIGTERM", () => {
    stop = true;
  });
  const loops = Array.from({ length: lanes }, async () => {
    while (!stop) {
      const m = await consumer.next({ expires: 5000 }).catch(() => null);
      if (!m) continue;
      const latency = await handle(m, js);
      if (latency !== undefined) process.stdout.write(`${latency} ${Date.now()}\n`);
    }
  });
  await Promise.all(loops);
  await nc.close();
}
