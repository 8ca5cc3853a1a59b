/**
 * The host's persistent identity: an ECDSA P-256 key and a self-signed certificate kept in the
 * state folder. Share links pin the certificate by its SHA-256 fingerprint; no CA is involved.
 * Each shared folder gets its own access secret, derived from a persistent master secret, so a
 * restarted host keeps serving the same links.
 */
import { createHash, createHmac, randomBytes, webcrypto, X509Certificate } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { toTeleportError } from "../errors.js";

export interface HostIdentity {
  keyPem: string;
  certPem: string;
  /** SHA-256 of the certificate's DER encoding. */
  fingerprint: Buffer;
  masterSecret: Buffer;
}

type X509 = typeof import("@peculiar/x509");
type SelfSignedParams = Parameters<X509["X509CertificateGenerator"]["createSelfSigned"]>[0];

const SIGNING = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const CERT_YEARS = 20;
const SHARE_SECRET_BYTES = 16;

export async function loadOrCreateIdentity(home: string): Promise<HostIdentity> {
  const dir = join(home, "identity");
  const paths = {
    key: join(dir, "host-key.pem"),
    cert: join(dir, "host-cert.pem"),
    secret: join(dir, "master-secret"),
  };
  try {
    const [keyPem, certPem, secretHex] = await Promise.all([
      readFile(paths.key, "utf8"),
      readFile(paths.cert, "utf8"),
      readFile(paths.secret, "utf8"),
    ]);
    return {
      keyPem,
      certPem,
      fingerprint: certificateFingerprint(certPem),
      masterSecret: Buffer.from(secretHex.trim(), "hex"),
    };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT")
      throw toTeleportError(err, `reading identity in ${dir}`);
  }
  const identity = await createIdentity();
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writePrivate(paths.key, identity.keyPem);
  await writePrivate(paths.secret, identity.masterSecret.toString("hex"));
  // The certificate last: its presence marks a complete identity.
  await writePrivate(paths.cert, identity.certPem);
  return identity;
}

async function createIdentity(): Promise<HostIdentity> {
  // Loaded only here: it is a large module tree (~120 ms to load) needed once per machine.
  const x509: X509 = await import("@peculiar/x509");
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<X509["cryptoProvider"]["set"]>[0]);
  const keys = await webcrypto.subtle.generateKey(SIGNING, true, ["sign", "verify"]);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString("hex"),
    name: "CN=teleport host",
    notBefore: new Date(now - 24 * 3600 * 1000),
    notAfter: new Date(now + CERT_YEARS * 365 * 24 * 3600 * 1000),
    keys: keys as unknown as SelfSignedParams["keys"],
    signingAlgorithm: SIGNING,
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString("base64").replace(/(.{64})/g, "$1\n")}\n-----END PRIVATE KEY-----\n`;
  const certPem = cert.toString("pem");
  return { keyPem, certPem, fingerprint: certificateFingerprint(certPem), masterSecret: randomBytes(32) };
}

async function writePrivate(path: string, contents: string): Promise<void> {
  const temp = `${path}.tmp-${process.pid}`;
  await writeFile(temp, contents, { mode: 0o600 });
  await rename(temp, path);
}

export function certificateFingerprint(certPemOrDer: string | Buffer): Buffer {
  const der = typeof certPemOrDer === "string" ? new X509Certificate(certPemOrDer).raw : certPemOrDer;
  return createHash("sha256").update(der).digest();
}

/** The access secret for one shared folder: stable across restarts, different for every folder. */
export function shareSecret(identity: HostIdentity, shareRealPath: string): Buffer {
  return createHmac("sha256", identity.masterSecret)
    .update(`share:${shareRealPath}`)
    .digest()
    .subarray(0, SHARE_SECRET_BYTES);
}
