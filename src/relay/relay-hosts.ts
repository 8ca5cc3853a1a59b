/**
 * The hosts a relay holds, by fingerprint, and the clients waiting for them: REGISTER proven by
 * a signature (relay-protocol.ts verifyRegistration), CONNECT turned into an INCOMING on the
 * host's control connection with a fresh token, and the host's ACCEPT with that token spliced
 * to the waiting client. Counts per host (pending, spliced) and the number of hosts are bounded;
 * a pending client not accepted in time is refused with TIMEOUT.
 */
import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import { nextFaultFilter, type RelayFaults } from "./relay-faults.js";
import { type RelayLimits, TokenBucket } from "./relay-limits.js";
import type { RelayLink } from "./relay-link.js";
import {
  encodeRelayMessage,
  RefusalReason as Reason,
  type RelayMessage,
  RelayType,
  TOKEN_BYTES,
  verifyRegistration,
} from "./relay-protocol.js";
import { splice } from "./splice.js";

interface RegisteredHost {
  readonly key: string;
  readonly fingerprint: Buffer;
  readonly control: RelayLink;
  readonly pending: Map<string, PendingConnect>;
  /** Spliced bytes of this host, when the relay bounds them. */
  readonly bytes: TokenBucket | undefined;
}

interface PendingConnect {
  readonly host: RegisteredHost;
  readonly client: { socket: Socket; remainder: Buffer };
  readonly timer: NodeJS.Timeout;
  /** Removes the listeners that forget it when the client goes: the splice watches it now. */
  readonly stopWatching: () => void;
}

type Register = Extract<RelayMessage, { type: typeof RelayType.REGISTER }>;

export class RelayHosts {
  readonly #limits: RelayLimits;
  readonly #faults: RelayFaults;
  readonly #hosts = new Map<string, RegisteredHost>();
  readonly #pending = new Map<string, PendingConnect>();
  /** Spliced connections by host key: kept across a host's registrations, as its splices are. */
  readonly #splicedByHost = new Map<string, number>();
  #spliced = 0;

  constructor(limits: RelayLimits, faults: RelayFaults) {
    this.#limits = limits;
    this.#faults = faults;
  }

  get stats(): { hosts: number; spliced: number; pending: number } {
    return { hosts: this.#hosts.size, spliced: this.#spliced, pending: this.#pending.size };
  }

  /** A host's REGISTER on `control`, whose HELLO carried `nonce`. */
  register(control: RelayLink, nonce: Buffer, message: Register, reflect: (asker: RelayLink) => void): void {
    const fingerprint = verifyRegistration(message, nonce);
    if (fingerprint === undefined) {
      control.refuse(Reason.BAD_SIGNATURE, "the signature does not verify with the certificate's key");
      return;
    }
    const key = fingerprint.toString("hex");
    const previous = this.#hosts.get(key);
    if (previous === undefined && this.#hosts.size >= this.#limits.maxHosts) {
      control.refuse(Reason.FULL, `the relay holds ${this.#limits.maxHosts} hosts`);
      return;
    }
    // The newer connection wins: a host whose old one died unseen (a NAT forgot it) comes back.
    if (previous !== undefined) this.#drop(previous, Reason.REPLACED);
    const rate = this.#limits.hostBytesPerSecond;
    const host: RegisteredHost = {
      key,
      fingerprint,
      control,
      pending: new Map(),
      bytes: rate > 0 ? new TokenBucket(rate, rate, performance.now()) : undefined,
    };
    this.#hosts.set(key, host);
    control.setIdleTimeout(this.#limits.idleTimeoutMs);
    control.events = {
      onMessage: (next) => {
        if (next.type === RelayType.REFLECT) reflect(control);
        else control.refuse(Reason.UNEXPECTED, "a control connection takes PING and REFLECT");
      },
      onClose: () => {
        if (this.#hosts.get(key) === host) this.#drop(host, Reason.UNKNOWN_HOST);
      },
    };
    control.send({ type: RelayType.REGISTERED, fingerprint });
  }

  /** A client's CONNECT: tells the host, and holds the client until the host's accept leg comes. */
  connect(client: RelayLink, fingerprint: Buffer): void {
    const host =
      this.#hosts.get(fingerprint.toString("hex")) ??
      (this.#faults.misroute === true ? this.#hosts.values().next().value : undefined);
    const limits = this.#limits;
    if (host === undefined) {
      client.refuse(Reason.UNKNOWN_HOST, "no host with that fingerprint is registered here");
      return;
    }
    if (
      host.pending.size >= limits.maxPendingPerHost ||
      (this.#splicedByHost.get(host.key) ?? 0) >= limits.maxSplicedPerHost
    ) {
      client.refuse(Reason.FULL, "the host has as many connections through this relay as it may");
      return;
    }
    const token = randomBytes(TOKEN_BYTES);
    const key = token.toString("hex");
    // Nothing more is read from the client until the splice: what it sends waits in the kernel.
    const released = client.release();
    const timer = setTimeout(() => {
      this.#forget(key);
      const detail = `the host did not accept within ${limits.pendingTimeoutMs} ms`;
      released.socket.end(encodeRelayMessage({ type: RelayType.REFUSED, reason: Reason.TIMEOUT, detail }));
    }, limits.pendingTimeoutMs);
    timer.unref();
    const onClose = () => this.#forget(key);
    const onError = () => released.socket.destroy();
    const pending: PendingConnect = {
      host,
      client: released,
      timer,
      stopWatching: () => {
        released.socket.off("close", onClose);
        released.socket.off("error", onError);
        released.socket.off("end", onError);
      },
    };
    released.socket.once("close", onClose);
    released.socket.on("error", onError);
    released.socket.on("end", onError);
    host.pending.set(key, pending);
    this.#pending.set(key, pending);
    host.control.send({
      type: RelayType.INCOMING,
      token,
      clientAddress: client.remoteAddress.slice(0, 64),
      clientPort: client.remotePort || 1,
    });
  }

  /** A host's accept leg for `token`: spliced to the client waiting for it. */
  accept(leg: RelayLink, token: Buffer): void {
    const key = token.toString("hex");
    const pending = this.#pending.get(key);
    if (pending === undefined) {
      leg.refuse(Reason.UNEXPECTED, "no client waits under that token");
      return;
    }
    this.#forget(key);
    const { host, client } = pending;
    pending.stopWatching();
    leg.send({ type: RelayType.SPLICED });
    client.socket.write(encodeRelayMessage({ type: RelayType.SPLICED }));
    this.#count(host.key, 1);
    const limits = this.#limits;
    const perConnection = limits.connectionBytesPerSecond;
    splice(client, leg.release(), {
      buckets: [
        ...(host.bytes === undefined ? [] : [host.bytes]),
        ...(perConnection > 0 ? [new TokenBucket(perConnection, perConnection, performance.now())] : []),
      ],
      idleTimeoutMs: limits.splicedIdleTimeoutMs,
      faults: this.#faults,
      faultFilter: nextFaultFilter(this.#faults),
      onClosed: () => this.#count(host.key, -1),
    });
  }

  closeAll(): void {
    for (const host of [...this.#hosts.values()]) this.#drop(host, Reason.CLOSING);
  }

  /** Unregisters `host`: its control connection is refused with `reason`, its waiting clients dropped. */
  #drop(host: RegisteredHost, reason: Reason): void {
    this.#hosts.delete(host.key);
    for (const [key, pending] of host.pending) {
      this.#forget(key);
      pending.client.socket.destroy();
    }
    host.control.refuse(reason, reason === Reason.REPLACED ? "the host registered again" : "unregistered");
  }

  #count(hostKey: string, change: number): void {
    this.#spliced += change;
    const count = (this.#splicedByHost.get(hostKey) ?? 0) + change;
    if (count <= 0) this.#splicedByHost.delete(hostKey);
    else this.#splicedByHost.set(hostKey, count);
  }

  #forget(key: string): void {
    const pending = this.#pending.get(key);
    if (pending === undefined) return;
    clearTimeout(pending.timer);
    this.#pending.delete(key);
    pending.host.pending.delete(key);
  }
}
