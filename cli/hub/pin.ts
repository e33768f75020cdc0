/**
 * Trust on first use, checked: `mesh join` dials the hub, lets NATS upgrade the connection to
 * TLS (the server sends its INFO in the clear first, then the TLS handshake follows), and looks
 * in the presented chain for the CA whose sha256 the join string carries. Only a server holding
 * a certificate issued by that CA, valid for the dialed name, passes; its CA is what the
 * machine trusts from then on.
 */
import { X509Certificate } from "node:crypto";
import { isIP, connect as tcp } from "node:net";
import { type PeerCertificate, connect as tlsConnect } from "node:tls";
import { CliError, EXIT } from "../errors.js";
import { certSha256, colonHex } from "./certs.js";

export interface PinnedCa {
  /** The CA certificate, PEM. */
  pem: string;
  /** The URL that answered. */
  url: string;
}

function hostPort(url: string): { host: string; port: number } {
  const m = /^tls:\/\/(\[[^\]]+\]|[^:]+):(\d+)$/.exec(url);
  if (!m) throw new CliError(EXIT.USAGE, `join string: ${url} is not tls://host:port`, "INVALID_ARGUMENT");
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]) };
}

/** The DER certificates the server presented, leaf first. */
function chainOf(peer: PeerCertificate & { issuerCertificate?: PeerCertificate }): Buffer[] {
  const out: Buffer[] = [];
  let c: (PeerCertificate & { issuerCertificate?: PeerCertificate }) | undefined = peer;
  while (c?.raw && !out.some((b) => b.equals(c!.raw))) {
    out.push(c.raw);
    c = c.issuerCertificate as typeof c;
  }
  return out;
}

/** Dials one URL: INFO in the clear, then TLS; resolves the presented chain (leaf first). */
function presentedChain(url: string, timeoutMs: number): Promise<Buffer[]> {
  const { host, port } = hostPort(url);
  return new Promise((resolve, reject) => {
    const sock = tcp({ host, port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer from ${host}:${port} in ${timeoutMs} ms`));
    }, timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    };
    sock.once("error", fail);
    let buf = "";
    const onData = (b: Buffer) => {
      buf += b.toString("latin1");
      const nl = buf.indexOf("\r\n");
      if (nl < 0) {
        if (buf.length > 64 * 1024) fail(new Error("not a NATS server (no INFO line)"));
        return;
      }
      sock.off("data", onData);
      const line = buf.slice(0, nl);
      if (!line.startsWith("INFO ")) return fail(new Error("not a NATS server (no INFO line)"));
      let info: { tls_required?: boolean };
      try {
        info = JSON.parse(line.slice(5)) as typeof info;
      } catch {
        return fail(new Error("not a NATS server (unreadable INFO)"));
      }
      if (!info.tls_required)
        return fail(new Error("the server does not require TLS: not a hub made by `mesh hub init`"));
      // Verification is ours (the pin below), not the system's trust store.
      const tls = tlsConnect({
        socket: sock,
        rejectUnauthorized: false,
        ...(isIP(host) ? {} : { servername: host }),
      });
      tls.once("error", fail);
      tls.once("secureConnect", () => {
        clearTimeout(timer);
        const chain = chainOf(tls.getPeerCertificate(true));
        tls.destroy();
        resolve(chain);
      });
    };
    sock.on("data", onData);
  });
}

/**
 * Finds the CA with fingerprint `caSha256` at the first of `urls` that answers and checks that
 * the server's certificate is issued by it and valid for the dialed host.
 */
export async function pinHubCa(urls: string[], caSha256: string, timeoutMs = 10_000): Promise<PinnedCa> {
  const reasons: string[] = [];
  for (const url of urls) {
    let chain: Buffer[];
    try {
      chain = await presentedChain(url, timeoutMs);
    } catch (err) {
      reasons.push(`${url}: ${(err as Error).message}`);
      continue;
    }
    const { host } = hostPort(url);
    const caDer = chain.find((d) => certSha256(d) === caSha256);
    const leaf = chain[0] ? new X509Certificate(chain[0]) : undefined;
    const ca = caDer ? new X509Certificate(caDer) : undefined;
    const issued = leaf && ca ? ca.ca && leaf.checkIssued(ca) && leaf.verify(ca.publicKey) : false;
    const forHost = leaf ? (isIP(host) ? leaf.checkIP(host) : leaf.checkHost(host)) !== undefined : false;
    const current = leaf
      ? Date.parse(leaf.validTo) > Date.now() && Date.parse(leaf.validFrom) <= Date.now()
      : false;
    if (!ca || !issued || !forHost || !current) {
      const why = !ca
        ? `presents no CA with the fingerprint ${colonHex(caSha256)} of the join string`
        : !issued
          ? "presents a certificate the pinned CA did not issue"
          : !forHost
            ? `presents a certificate that is not valid for ${host}`
            : "presents an expired certificate";
      throw new CliError(
        EXIT.OTHER,
        `the server at ${url} ${why}: it is not the hub that made this join string, or someone is in between; nothing was stored`,
        "FAILED_PRECONDITION",
        { field: "join" },
      );
    }
    return { pem: ca.toString(), url };
  }
  throw new CliError(
    EXIT.UNREACHABLE,
    `cannot reach the hub to check its certificate (${reasons.join("; ")}); is \`mesh hub start\` running there and its port open? Nothing was stored`,
    "UNAVAILABLE",
  );
}
