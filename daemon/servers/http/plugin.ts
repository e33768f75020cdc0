/**
 * The HTTP side as a daemon plugin: serves the daemon's MeshMetrics, readiness from the daemon
 * and JetStream, and /sd from the presence registry; advertises its URL in presence
 * (`httpUrl`) so any daemon's /sd lists every daemon.
 */
import { readFile } from "node:fs/promises";
import type { DaemonConfig } from "../../config.js";
import { errorMessage, MeshError } from "../../errors.js";
import type { MeshMetrics } from "../../metrics/index.js";
import { poolConsumerName, TASKS_STREAM } from "../../nats/index.js";
import type { DaemonPlugin, PluginContext } from "../../plugin.js";
import { HttpServer } from "../http-server.js";
import type { Readiness } from "./routes.js";
import { advertisedUrls, targetGroups } from "./sd.js";

const READY_CHECK_TIMEOUT_MS = 2000;

async function readToken(file: string, field = "http.tokenFile"): Promise<string> {
  let token: string;
  try {
    token = (await readFile(file, "utf8")).trim();
  } catch (err) {
    throw new MeshError("INVALID_ARGUMENT", `${field}: cannot read ${file}: ${errorMessage(err)}`, {
      field,
      cause: err,
    });
  }
  if (!token) throw new MeshError("INVALID_ARGUMENT", `${field}: ${file} is empty`, { field });
  return token;
}

async function readPem(file: string, field: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new MeshError("INVALID_ARGUMENT", `${field}: cannot read ${file}: ${errorMessage(err)}`, {
      field,
      cause: err,
    });
  }
}

/** The host names of `http.advertise` (a proxy's or a DNS name's), which requests may carry. */
function advertiseHosts(a: string | string[] | undefined): string[] {
  const list = typeof a === "string" ? [a] : (a ?? []);
  return list.map((x) => {
    try {
      return new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(x) ? x : `http://${x}`).hostname.replace(/^\[|\]$/g, "");
    } catch {
      return x;
    }
  });
}

function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

/** Running, NATS up (as last reported), and every pool's consumer answering. */
export async function readiness(d: PluginContext, metrics: MeshMetrics | undefined): Promise<Readiness> {
  const checks: Readiness["checks"] = {};
  checks.daemon = d.ready ? { ok: true } : { ok: false, detail: `daemon is ${d.state}` };
  const natsUp = d.ready && (metrics ? metrics.natsConnected : true);
  checks.nats = natsUp ? { ok: true } : { ok: false, detail: "not connected" };
  if (natsUp) {
    const jsm = d.topology.jsm;
    await Promise.all(
      d.config.pools.map(async (pool) => {
        const name = poolConsumerName(pool);
        try {
          await within(jsm.consumers.info(TASKS_STREAM, name), READY_CHECK_TIMEOUT_MS);
          checks[`consumer:${name}`] = { ok: true };
        } catch (err) {
          checks[`consumer:${name}`] = { ok: false, detail: errorMessage(err) };
        }
      }),
    );
  }
  return { ready: Object.values(checks).every((c) => c.ok), checks };
}

export function httpPlugin(config: DaemonConfig, metrics?: MeshMetrics): DaemonPlugin {
  let server: HttpServer | undefined;
  return {
    name: "http",
    async start(d) {
      const token = config.http.tokenFile ? await readToken(config.http.tokenFile) : undefined;
      const writeToken = config.http.writeTokenFile
        ? await readToken(config.http.writeTokenFile, "http.writeTokenFile")
        : undefined;
      if (writeToken && writeToken === token)
        throw new MeshError(
          "INVALID_ARGUMENT",
          "http.writeTokenFile: the write token is the read token (http.tokenFile); give writes a token of their own",
          { field: "http.writeTokenFile" },
        );
      const tls =
        config.http.tlsCertFile && config.http.tlsKeyFile
          ? {
              cert: await readPem(config.http.tlsCertFile, "http.tlsCertFile"),
              key: await readPem(config.http.tlsKeyFile, "http.tlsKeyFile"),
            }
          : undefined;
      server = new HttpServer({
        host: config.http.host,
        port: config.http.port,
        logger: d.log,
        ...(token ? { token } : {}),
        ...(tls ? { tls } : {}),
        routes: {
          ...(metrics ? { metrics: () => metrics.render() } : {}),
          readiness: () => readiness(d, metrics),
          targets: async () => targetGroups(await d.api.listWorkers()),
          dashboard: {
            api: d.api,
            hosts: advertiseHosts(config.http.advertise),
            ...(writeToken ? { writeToken } : {}),
          },
        },
      });
      const addr = await server.start();
      const advertised = advertisedUrls({
        bindHost: config.http.host,
        port: addr.port,
        advertise: config.http.advertise,
        tls: tls !== undefined,
      });
      const url = advertised.urls[0]!;
      d.presenceExtras.httpUrl = url;
      d.presenceExtras.httpUrls = advertised.urls;
      d.presenceExtras.reach = advertised.reach;
      d.log.info(
        {
          address: `${addr.host}:${addr.port}`,
          urls: advertised.urls,
          reach: advertised.reach,
          auth: token ? "bearer" : "none",
        },
        "HTTP listening",
      );
    },
    async stop() {
      await server?.stop();
    },
  };
}
