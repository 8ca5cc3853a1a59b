/**
 * The host's persistent identity: an ECDSA P-256 key and a self-signed certificate kept in the
 * state folder. Share links pin the certificate by its SHA-256 fingerprint; no CA is involved.
 * Each shared folder gets its own access secret, derived from a persistent master secret, so a
 * restarted host keeps serving the same links.
 */
import { createHash, createHmac, randomBytes, webcrypto, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { writePrivateFile } from "../store/private-file.js";

export interface HostIdentity {
  keyPem: string;
  certPem: string;
  /** SHA-256 of the certificate's DER encoding. */
  fingerprint: Buffer;
  masterSecret: Buffer;
  /** The folder the identity lives in (its share generations too). */
  dir: string;
}

type X509 = typeof import("@peculiar/x509");
type SelfSignedParams = Parameters<X509["X509CertificateGenerator"]["createSelfSigned"]>[0];

const SIGNING = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const CERT_YEARS = 20;
const SHARE_SECRET_BYTES = 16;
const MASTER_SECRET_BYTES = 32;
const GENERATION_BYTES = 16;

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
      masterSecret: parseSecret(secretHex, MASTER_SECRET_BYTES, paths.secret),
      dir,
    };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT")
      throw toTeleportError(err, `reading identity in ${dir}`);
  }
  const identity = await createIdentity(dir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writePrivateFile(paths.key, identity.keyPem);
  await writePrivateFile(paths.secret, identity.masterSecret.toString("hex"));
  // The certificate last: its presence marks a complete identity.
  await writePrivateFile(paths.cert, identity.certPem);
  return identity;
}

/**
 * `bytes` bytes written as hex, or an IDENTITY error: a damaged secret file must stop the host,
 * not become a short or empty key that makes links and the QUIC key predictable.
 */
function parseSecret(text: string, bytes: number, path: string): Buffer {
  const hex = text.trim();
  if (!new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`).test(hex)) {
    throw new TeleportError(ErrorCode.IDENTITY, `${path} is not a secret of ${bytes} bytes in hex`, {
      hint: "restore it from a backup, or remove the identity folder to make a new identity (every link changes)",
    });
  }
  return Buffer.from(hex, "hex");
}

async function createIdentity(dir: string): Promise<HostIdentity> {
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
  const masterSecret = randomBytes(MASTER_SECRET_BYTES);
  return { keyPem, certPem, fingerprint: certificateFingerprint(certPem), masterSecret, dir };
}

export function certificateFingerprint(certPemOrDer: string | Buffer): Buffer {
  const der = typeof certPemOrDer === "string" ? new X509Certificate(certPemOrDer).raw : certPemOrDer;
  return createHash("sha256").update(der).digest();
}

/**
 * The access secret for one shared folder: stable across restarts, different for every folder,
 * and new after each rotateShareSecret (a folder never rotated keeps the secret it always had).
 */
export function shareSecret(identity: HostIdentity, shareRealPath: string): Buffer {
  return folderSecret(identity, `share:${shareRealPath}`, shareRealPath);
}

/**
 * The write secret of a shared folder (`host --allow-upload`): derived apart from the read
 * secret, so a read link says nothing of it, and rotated with it.
 */
export function uploadSecret(identity: HostIdentity, shareRealPath: string): Buffer {
  return folderSecret(identity, `upload:${shareRealPath}`, shareRealPath);
}

function folderSecret(identity: HostIdentity, label: string, shareRealPath: string): Buffer {
  const mac = createHmac("sha256", identity.masterSecret).update(label);
  const generation = readGeneration(generationPath(identity.dir, shareRealPath));
  if (generation !== undefined) mac.update(`:generation:${generation.toString("hex")}`);
  return mac.digest().subarray(0, SHARE_SECRET_BYTES);
}

/** Gives a shared folder a new access secret: every link to it made before stops working. */
export async function rotateShareSecret(home: string, shareRealPath: string): Promise<void> {
  const path = generationPath(join(home, "identity"), shareRealPath);
  await mkdir(join(home, "identity", "shares"), { recursive: true, mode: 0o700 });
  await writePrivateFile(path, randomBytes(GENERATION_BYTES).toString("hex"));
}

/** Where a folder's generation is kept: named by a hash of its path, which the folder name may not be. */
function generationPath(identityDir: string, shareRealPath: string): string {
  return join(identityDir, "shares", createHash("sha256").update(shareRealPath).digest("hex"));
}

function readGeneration(path: string): Buffer | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw toTeleportError(err, `reading ${path}`);
  }
  return parseSecret(text, GENERATION_BYTES, path);
}
