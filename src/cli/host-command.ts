/**
 * `teleport host`: start a Host, print and write its link, and run until stopped: by Ctrl-C, by
 * `--expire` running out, or (`--once`) by the first pull that completes. A link that expired or
 * was used once is then rotated, so it does not come back with the next `teleport host`. While it
 * runs, stderr says where it can be reached and who pulled what (host-log.ts).
 */
import { realpath } from "node:fs/promises";
import { type NetworkInterfaceInfo, networkInterfaces } from "node:os";
import type { CompressionStats } from "../compression/compression-threads.js";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { type ClientEvent, Host, type UploadReceiverFactory } from "../host/host.js";
import { parseRelayAddress } from "../relay/relay-protocol.js";
import { writePrivateFile } from "../store/private-file.js";
import { rotateShareSecret } from "../transport/identity.js";
import { MAX_LINK_RELAYS } from "../transport/link.js";
import { teleportHome } from "./home.js";
import { ClientLog } from "./host-log.js";
import { terminalLine } from "./terminal-text.js";

export interface HostFlags {
  port?: number;
  bind?: string;
  advertise?: string;
  linkFile?: string;
  /** false with --no-compress. */
  compress?: boolean;
  /** false with --no-quic. */
  quic?: boolean;
  congestion?: string;
  allowNoEncryption?: boolean;
  /** A new secret for the folder before starting: earlier links stop working. */
  rotate?: boolean;
  /** --expire, in milliseconds: the host stops, and the link dies, this long after it starts. */
  expire?: number;
  /** The host stops, and the link dies, after the first pull that completes. */
  once?: boolean;
  /** Take uploads from a second, write link. */
  allowUpload?: boolean;
  /** Bytes one upload may hold. */
  maxUploadBytes?: number;
  /** Draw the link as a QR code on stderr; by default only where stderr is a terminal. */
  qr?: boolean;
  /** `--relay HOST:PORT`, each: relays to register with, named in the link. */
  relay?: string[];
}

/** Why the host stopped serving. */
type StopReason = "signal" | "expired" | "used";

export async function hostCommand(dir: string, flags: HostFlags): Promise<void> {
  const home = teleportHome();
  const shareRoot = await realpath(dir).catch((err: unknown) => {
    throw toTeleportError(err, dir);
  });
  if (flags.rotate === true) await rotateShareSecret(home, shareRoot);
  const once = flags.once === true ? new FirstCompletePull() : undefined;
  const clientLog = new ClientLog((line) => process.stderr.write(line));
  const advertise = flags.advertise === undefined ? undefined : interfaceAddress(flags.advertise);
  const notice = (message: string) => process.stderr.write(terminalLine(`teleport: ${message}`));
  const uploads = flags.allowUpload === true ? await uploadReceiverFor(flags, notice) : undefined;
  const relays = (flags.relay ?? []).map(parseRelayAddress);
  if (relays.length > MAX_LINK_RELAYS)
    throw new TeleportError(ErrorCode.USAGE, `at most ${MAX_LINK_RELAYS} relays (--relay)`);
  const host = await Host.start({
    root: dir,
    home,
    ...(flags.port === undefined ? {} : { port: flags.port }),
    ...(flags.bind === undefined ? {} : { bind: flags.bind }),
    ...(advertise === undefined ? {} : { advertise }),
    compression: flags.compress !== false,
    ...(flags.quic === false ? { transports: ["tcp" as const] } : {}),
    ...(flags.congestion === undefined ? {} : { congestion: flags.congestion }),
    allowPlaintext: flags.allowNoEncryption === true,
    onNotice: notice,
    ...(uploads === undefined ? {} : { uploads }),
    ...(relays.length === 0 ? {} : { relays }),
    onClientEvent: (event: ClientEvent) => {
      clientLog.observe(event);
      once?.observe(event);
    },
  });
  const links = host.writeUrl === undefined ? `${host.url}\n` : `${host.url}\n${host.writeUrl}\n`;
  process.stdout.write(links);
  if (flags.allowNoEncryption === true) {
    process.stderr.write(
      "teleport: warning: clients may pull without encryption (--allow-no-encryption): " +
        "their data crosses the network readable by anyone on it\n",
    );
  }
  if (flags.linkFile !== undefined) await writePrivateFile(flags.linkFile, links);
  // A terminal is a person looking (not a log, which must not hold the secret), or --qr asked.
  if (flags.qr ?? process.stderr.isTTY) {
    const { linkQrCode } = await import("./link-qr.js");
    process.stderr.write(await linkQrCode(host.url));
  }
  process.stderr.write(
    `teleport: sharing ${host.share.source} on port ${host.port} (${host.transports.join(" and ")}); Ctrl-C to stop\n`,
  );
  printReachableAddresses(host, flags.bind ?? "0.0.0.0");
  const stop = stopRequested(host, flags.expire, once);
  const reason = await stop.reason;
  // Retired before closing: a host killed while its clients are let go leaves no live link behind.
  try {
    if (reason !== "signal") await rotateShareSecret(home, host.share.source);
  } finally {
    await host.close().catch(() => {});
    stop.dispose();
  }
  if (reason !== "signal") {
    process.stderr.write(
      `teleport: ${reason === "expired" ? "the link expired" : "the link was used once"}; stopped, and the link no longer works\n`,
    );
  }
  const compressed = host.compressionStats;
  if (compressed !== undefined && compressed.chunks > 0)
    process.stderr.write(`${describeCompression(compressed)}\n`);
}

/** What takes the host's uploads (`--allow-upload`): loaded only then, as it brings the pull's machinery. */
async function uploadReceiverFor(
  flags: HostFlags,
  notice: (message: string) => void,
): Promise<UploadReceiverFactory> {
  const { uploadReceiver } = await import("../push/upload-receiver.js");
  return uploadReceiver({ maxUploadBytes: flags.maxUploadBytes, onNotice: notice });
}

/**
 * Why the host is to stop: the first of a signal, the expiry and the first complete pull. A
 * signal after that destroys the host instead of waiting for its clients, until `dispose` (once
 * the host is closed) takes the signal listeners away.
 */
function stopRequested(
  host: Host,
  expireMs: number | undefined,
  once: FirstCompletePull | undefined,
): { reason: Promise<StopReason>; dispose(): void } {
  let stopping = false;
  let resolveStop: (reason: StopReason) => void = () => {};
  const reason = new Promise<StopReason>((resolve) => {
    resolveStop = resolve;
  });
  const stop = (why: StopReason) => {
    if (stopping) {
      if (why === "signal") host.destroy();
      return;
    }
    stopping = true;
    clearTimeout(expiry);
    resolveStop(why);
  };
  const expiry = expireMs === undefined ? undefined : setTimeout(() => stop("expired"), expireMs);
  once?.onComplete(() => stop("used"));
  const onSignal = () => stop("signal");
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    reason,
    dispose: () => {
      process.removeListener("SIGINT", onSignal);
      process.removeListener("SIGTERM", onSignal);
    },
  };
}

/**
 * `--once`'s idea of a complete pull: clients proved the link's secret, and then every
 * authenticated connection closed, at least one of them cleanly. A pull that was cut or killed
 * ends every connection with an error, so it does not count and can resume; a pull that
 * finished closes its control connection cleanly, even when a connection it dropped along the
 * way (the losing attempt of a transport race, a healed data stream) ended with one. A connection
 * that never authenticated (a scan, a wrong link) does not count either.
 */
export class FirstCompletePull {
  #open = 0;
  #closedCleanly = false;
  #complete: (() => void) | undefined;

  onComplete(listener: () => void): void {
    this.#complete = listener;
  }

  observe(event: ClientEvent): void {
    if (event.kind === "request") return;
    if (event.kind === "authenticated") {
      this.#open += 1;
      return;
    }
    if (!event.authenticated) return;
    this.#open -= 1;
    if (event.error === undefined) this.#closedCleanly = true;
    if (this.#open > 0) return;
    const complete = this.#closedCleanly;
    this.#closedCleanly = false;
    if (complete) this.#complete?.();
  }
}

/**
 * `--advertise`: an address or host name as given, or an interface's name (`eth0`, `wg0`) for
 * its first IPv4 address, so a link can name the VPN or the LAN a user means.
 */
function interfaceAddress(advertise: string): string {
  const addresses = networkInterfaces()[advertise];
  if (addresses === undefined) return advertise;
  const address = addresses.find((candidate) => candidate.family === "IPv4") ?? addresses[0];
  if (address === undefined)
    throw new TeleportError(ErrorCode.USAGE, `--advertise ${advertise}: the interface has no address`);
  return address.address;
}

/**
 * Bound to every address (the default 0.0.0.0, or ::), the host is reachable at each of this
 * machine's, and the link carries one (the first external IPv4, which may be docker0's or a
 * VPN's): every one is listed, and --advertise picks the link's. Addresses only: stderr is
 * where logs are kept, and a link there would put its secret in them.
 */
function printReachableAddresses(host: Host, bind: string): void {
  if (bind !== "0.0.0.0" && bind !== "::") return;
  const reachable = Object.entries(networkInterfaces()).flatMap(([name, addresses]) =>
    (addresses ?? []).filter((address) => listenedOn(address, bind)).map((address) => ({ name, address })),
  );
  process.stderr.write(
    `teleport: listening on every address (--bind ${bind}); the link names ${host.link.host}, ` +
      "--advertise ADDRESS or INTERFACE names another:\n",
  );
  const width = Math.max(...reachable.map(({ name }) => name.length));
  for (const { name, address } of reachable) {
    const inLink = address.address === host.link.host ? "  (in the link)" : "";
    process.stderr.write(`teleport:   ${name.padEnd(width)}  ${address.address}${inLink}\n`);
  }
}

/** 0.0.0.0 listens on every IPv4 address; :: on every address, but a link-local IPv6 one needs a zone a link cannot carry. */
function listenedOn(address: NetworkInterfaceInfo, bind: string): boolean {
  if (address.family === "IPv4") return true;
  return bind === "::" && address.scopeid === 0;
}

/** "teleport: compressed 191.0 MB into 52.3 MB (3.65x) for clients; by level: 1 10.2 MB, 3 180.8 MB" */
function describeCompression({ bytesIn, bytesOut, bytesInByLevel }: CompressionStats): string {
  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
  const levels = [...bytesInByLevel]
    .sort(([a], [b]) => a - b)
    .map(([level, bytes]) => `${level} ${mb(bytes)}`)
    .join(", ");
  const ratio = (bytesIn / bytesOut).toFixed(2);
  return `teleport: compressed ${mb(bytesIn)} into ${mb(bytesOut)} (${ratio}x) for clients; by level: ${levels}`;
}
