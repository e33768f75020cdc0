/**
 * Pickup-floor worker for the `claims` latency rows (light.ts): the least code that can take a
 * doorbell and claim its task, so that what the stored messages themselves cost shows apart
 * from any client library's or the mesh's code. `lanes` pull requests wait on the durable
 * consumer (plain request messages, batch 1, re-sent when one ends); a doorbell is parsed, the
 * worker stamps its clock (as a daemon stamps `startedAt` when it decides to claim), claims with
 * one compare-and-set publish (at the doorbell's revision; without one, a create: the record was
 * never written), acks, and reports "<submit -> running ms> <finished at, epoch ms>" like the
 * other workers. Any refused claim ends the worker, so the bench fails at once.
 * Usage: node pickup-floor-worker.js <natsUrl> <stream> <consumer> <bucket> <lanes>
 */
import { connect, createInbox, headers, type Msg } from "@nats-io/transport-node";
import { kvSubject } from "../daemon/lite.js";

interface Bell {
  id: string;
  revision?: number;
  t: number;
  record: Record<string, unknown>;
}

const [url, stream, consumer, bucket, lanesArg] = process.argv.slice(2);
const nc = await connect({ servers: url! });
const inbox = createInbox();
const pullSubject = `$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumer}`;
const pull = () =>
  nc.publish(pullSubject, JSON.stringify({ batch: 1, expires: 5e9 }), { reply: `${inbox}.pull` });
const acks = createInbox();
let pending = new Map<string, (m: Msg) => void>();
let next = 0;
nc.subscribe(`${acks}.*`, {
  callback: (_err, m) => {
    const k = m.subject.slice(acks.length + 1);
    pending.get(k)?.(m);
    pending.delete(k);
  },
});
nc.subscribe(`${inbox}.pull`, {
  callback: (_err, m) => {
    // A status (expired, no messages): this request ended; send another.
    if (!m.reply) {
      if ((m.headers?.code ?? 0) !== 100) pull();
      return;
    }
    void claim(m).finally(pull);
  },
});

async function claim(m: Msg): Promise<void> {
  const bell = m.json<Bell>();
  const runningAt = Date.now();
  const h = headers();
  h.set("Nats-Expected-Last-Subject-Sequence", String(bell.revision ?? 0));
  const k = (next++).toString(36);
  const answered = new Promise<Msg>((resolve) => pending.set(k, resolve));
  nc.publish(kvSubject(bucket!, bell.id), JSON.stringify({ ...bell.record, state: "running" }), {
    headers: h,
    reply: `${acks}.${k}`,
  });
  const ack = (await answered).json<{ error?: { description: string } }>();
  if (ack.error) {
    process.stderr.write(`pickup floor worker: claim of ${bell.id} refused: ${ack.error.description}\n`);
    process.exit(1);
  }
  m.respond(); // ack the doorbell
  process.stdout.write(`${runningAt - bell.t} ${Date.now()}\n`);
}

for (let i = 0; i < Number(lanesArg ?? 4); i++) pull();
process.on("SIGTERM", () => {
  pending = new Map();
  void nc.close().then(() => process.exit(0));
});
