/**
 * `npm run bench -- chunks`: what the bundle store's chunk size does to Object Store
 * throughput on loopback: puts and gets of the same bytes with 128 KiB and 1 MiB chunks (the
 * default and the server's max_payload). It chose DEFAULT_CHUNK_BYTES (daemon/transfer).
 */
import { randomBytes } from "node:crypto";
import { jetstream } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { connect } from "@nats-io/transport-node";
import { DEFAULT_CHUNK_BYTES } from "../daemon/index.js";
import { NatsServer } from "../test/harness/index.js";
import { percentile, round } from "./stats.js";

const MiB = 1024 * 1024;

async function chunkRows(url: string, rounds: number): Promise<Array<Record<string, string | number>>> {
  const nc = await connect({ servers: url });
  const objm = new Objm(jetstream(nc));
  const rows: Array<Record<string, string | number>> = [];
  for (const sizeMiB of [8, 32]) {
    const data = randomBytes(sizeMiB * MiB);
    for (const chunk of [128 * 1024, MiB]) {
      const os = await objm.create(`bench-${chunk}-${sizeMiB}`, { max_bytes: 1024 * MiB });
      const put: number[] = [];
      const get: number[] = [];
      for (let i = 0; i < rounds; i++) {
        let t = performance.now();
        await os.putBlob({ name: `o${i}`, options: { max_chunk_size: Math.min(chunk, MiB - 4096) } }, data);
        put.push(performance.now() - t);
        t = performance.now();
        const back = await os.getBlob(`o${i}`);
        get.push(performance.now() - t);
        if (back?.length !== data.length) throw new Error("object came back short");
        await os.delete(`o${i}`);
      }
      await os.destroy();
      const mbps = (ms: number) => round(sizeMiB / (ms / 1000), 1);
      rows.push({
        object: `${sizeMiB} MiB`,
        chunk: chunk === MiB ? "1 MiB" : "128 KiB",
        putMBps_p50: mbps(percentile(put, 50)),
        getMBps_p50: mbps(percentile(get, 50)),
        putMs_p50: round(percentile(put, 50)),
        getMs_p50: round(percentile(get, 50)),
      });
    }
  }
  await nc.close();
  return rows;
}

export async function chunksScenario(o: {
  rounds: number;
}): Promise<{ rows: object[] } & Record<string, unknown>> {
  const nats = await NatsServer.start();
  try {
    const rows = await chunkRows(nats.url, o.rounds);
    return {
      scenario: "chunks",
      rows,
      chosenChunkBytes: DEFAULT_CHUNK_BYTES,
      note: "loopback, one nats-server 2.9.10 (file store); MB/s = MiB per second of object bytes",
    };
  } finally {
    await nats.cleanup();
  }
}
