// The NATS error matchers (daemon/nats/js-errors.ts) against errors a real nats-server gives:
// a compare-and-set conflict, a full stream, a missing stream / consumer / message, a name in
// use, a byte limit JetStream cannot reserve, an auth failure and an untrusted TLS
// certificate. Each is matched by its code or type; an Error with only the same text is not.
import { DiscardPolicy, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileConfig } from "../daemon/config.js";
import { connectNats } from "../daemon/nats/connect.js";
import {
  isAlreadyExists,
  isAuthError,
  isConsumerNotFound,
  isInsufficientResources,
  isNoMessageFound,
  isStoreFull,
  isStreamNotFound,
  isTlsError,
  isWrongLastSequence,
} from "../daemon/nats/js-errors.js";
import { JsPublisher } from "../daemon/nats/js-publisher.js";
import { TASKS_STREAM } from "../daemon/nats/names.js";
import { hasDoorbell } from "../daemon/queue/doorbell.js";
import { makeTempDir, NatsServer, removeTempDirs } from "./harness/index.js";
import { caSignedCert } from "./support/tls.js";

const servers: NatsServer[] = [];
let nc: NatsConnection;
let jsm: JetStreamManager;

const natsConfig = (nats: Record<string, unknown>) => compileConfig({ nats }, "test").nats;

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

beforeAll(async () => {
  const s = await NatsServer.start();
  servers.push(s);
  nc = await connect({ servers: s.url });
  jsm = await jetstreamManager(nc);
});

afterAll(async () => {
  await nc?.close();
  await Promise.all(servers.map((s) => s.stop()));
  await removeTempDirs();
});

describe("JetStream API errors, by code", () => {
  it("a compare-and-set conflict (kv.create of a live key, a publish at a stale sequence)", async () => {
    const kv = await new Kvm(nc).create("errs-cas");
    await kv.create("k", "v1");
    const dup = await caught(kv.create("k", "v2"));
    expect(isWrongLastSequence(dup)).toBe(true);
    expect(isStoreFull(dup)).toBe(false);

    const pub = new JsPublisher(nc);
    try {
      const stale = await caught(pub.publish("$KV.errs-cas.k", "v3", { expectLastSubjectSequence: 0 }));
      expect(isWrongLastSequence(stale)).toBe(true);
    } finally {
      pub.close();
    }
  });

  it("a full stream with discard new", async () => {
    await jsm.streams.add({
      name: "ERRS_FULL",
      subjects: ["errs.full"],
      max_bytes: 1024,
      discard: DiscardPolicy.New,
    });
    const js = jetstream(nc);
    const pub = new JsPublisher(nc);
    try {
      let full: unknown;
      for (let i = 0; i < 100 && full === undefined; i++) {
        try {
          await pub.publish("errs.full", new Uint8Array(200));
        } catch (err) {
          full = err;
        }
      }
      expect(isStoreFull(full)).toBe(true);
      expect(isWrongLastSequence(full)).toBe(false);
      // nats.js's own client gives the same
      expect(isStoreFull(await caught(js.publish("errs.full", new Uint8Array(200))))).toBe(true);
    } finally {
      pub.close();
    }
  });

  it("a missing stream, consumer and message; a stream name in use", async () => {
    const noStream = await caught(jsm.streams.info("ERRS_NONE"));
    expect(isStreamNotFound(noStream)).toBe(true);
    expect(isConsumerNotFound(noStream)).toBe(false);

    await jsm.streams.add({ name: "ERRS_S", subjects: ["errs.s"] });
    const noConsumer = await caught(jsm.consumers.info("ERRS_S", "nobody"));
    expect(isConsumerNotFound(noConsumer)).toBe(true);
    expect(isStreamNotFound(noConsumer)).toBe(false);

    // nats.js's getMessage turns "no message found" into null; the raw API call shows the code
    const api = jsm as unknown as { _request(subj: string, data: unknown): Promise<unknown> };
    const noMessage = await caught(api._request("$JS.API.STREAM.MSG.GET.ERRS_S", { last_by_subj: "errs.s" }));
    expect(isNoMessageFound(noMessage)).toBe(true);

    const tooBig = await caught(
      jsm.streams.add({ name: "ERRS_BIG", subjects: ["errs.big"], max_bytes: 2 ** 50 }),
    );
    expect(isInsufficientResources(tooBig)).toBe(true);

    const inUse = await caught(jsm.streams.add({ name: "ERRS_S", subjects: ["errs.other"] }));
    expect(isAlreadyExists(inUse)).toBe(true);
  });

  it("hasDoorbell answers false without a doorbell and without a tasks stream", async () => {
    expect(await hasDoorbell(jsm, "default", "t1")).toBe(false); // no MESH_TASKS stream: stream not found
    await jsm.streams.add({ name: TASKS_STREAM, subjects: ["errs.tasks.>"] });
    try {
      expect(await hasDoorbell(jsm, "default", "t1")).toBe(false); // no message
    } finally {
      await jsm.streams.delete(TASKS_STREAM);
    }
  });

  it("does not match an error that only has the text", () => {
    for (const text of [
      "wrong last sequence",
      "maximum bytes exceeded",
      "stream not found",
      "consumer not found",
      "no message found",
      "stream name already in use",
      "insufficient storage resources available",
      "Authorization Violation",
      "certificate has expired",
    ]) {
      const e = new Error(text);
      expect([
        isWrongLastSequence(e),
        isStoreFull(e),
        isStreamNotFound(e),
        isConsumerNotFound(e),
        isNoMessageFound(e),
        isAlreadyExists(e),
        isInsufficientResources(e),
        isAuthError(e),
        isTlsError(e),
      ]).not.toContain(true);
    }
  });
});

describe("connection errors, by type", () => {
  it("an auth failure is an AuthorizationError, and meshd's hint names the credential flags", async () => {
    const s = await NatsServer.start({
      jetstream: false,
      extraConfig: `authorization { token: "tok-123456" }`,
    });
    servers.push(s);
    const err = await caught(connect({ servers: s.url, token: "wrong", reconnect: false }));
    expect(isAuthError(err)).toBe(true);
    expect(isTlsError(err)).toBe(false);
    const mesh = await caught(connectNats(natsConfig({ servers: [s.url], token: "wrong" }), "t"));
    expect(String(mesh)).toMatch(/check --nats-creds/);
  });

  it("an untrusted certificate is a TLS error, and meshd's hint says TLS", async () => {
    const { cert, key } = caSignedCert(await makeTempDir("errs-tls-"));
    const s = await NatsServer.start({
      jetstream: false,
      extraConfig: `tls { cert_file: "${cert}", key_file: "${key}" }`,
    });
    servers.push(s);
    const url = `tls://127.0.0.1:${s.port}`;
    const err = await caught(connect({ servers: url, tls: {}, reconnect: false }));
    expect(isTlsError(err)).toBe(true);
    expect(isAuthError(err)).toBe(false);
    const mesh = await caught(connectNats(natsConfig({ servers: [url] }), "t"));
    expect(String(mesh)).toMatch(/TLS: does the server have tls/);
  });
});
