/**
 * The relay's UDP reflector: a peer asks over TCP (REFLECT), gets a nonce (REFLECT_NONCE), sends
 * it in a datagram from the UDP socket whose public mapping it wants to learn, and is told over
 * the same TCP connection the address and port the datagram came from (REFLECTED). Only a nonce
 * the relay gave out is answered, once, and only over its own TCP connection: the reflector
 * never sends a datagram, so it cannot be used to amplify traffic toward anyone.
 */
import { randomBytes } from "node:crypto";
import * as dgram from "node:dgram";
import { isIPv6 } from "node:net";
import { toTeleportError } from "../errors.js";
import { decodeReflectDatagram, type RelayMessage, RelayType, TOKEN_BYTES } from "./relay-protocol.js";

/** Nonces one TCP connection may have outstanding. */
const MAX_OUTSTANDING = 4;
/** A nonce not used within this long is forgotten. */
const NONCE_LIFETIME_MS = 10_000;

/** Where a reflected address is told: the TCP connection that asked. */
export interface ReflectAsker {
  send(message: RelayMessage): void;
}

export class Reflector {
  readonly #socket: dgram.Socket;
  readonly #pending = new Map<string, { asker: ReflectAsker; timer: NodeJS.Timeout }>();
  readonly #outstanding = new Map<ReflectAsker, number>();

  private constructor(socket: dgram.Socket) {
    this.#socket = socket;
    socket.on("message", (datagram, from) => this.#onDatagram(datagram, from));
    socket.on("error", () => {});
  }

  /** Binds the UDP port beside the relay's TCP port (the same number). */
  static bind(host: string, port: number): Promise<Reflector> {
    const socket = dgram.createSocket(isIPv6(host) ? "udp6" : "udp4");
    return new Promise((resolve, reject) => {
      socket.once("error", (err) => reject(toTeleportError(err, `binding UDP ${host}:${port}`)));
      socket.bind(port, host, () => resolve(new Reflector(socket)));
    });
  }

  get port(): number {
    return this.#socket.address().port;
  }

  /** A nonce for `asker` (REFLECT_NONCE), or undefined when it has too many outstanding. */
  nonceFor(asker: ReflectAsker): RelayMessage | undefined {
    const outstanding = this.#outstanding.get(asker) ?? 0;
    if (outstanding >= MAX_OUTSTANDING) return undefined;
    const nonce = randomBytes(TOKEN_BYTES);
    const key = nonce.toString("hex");
    const timer = setTimeout(() => this.#forget(key), NONCE_LIFETIME_MS);
    timer.unref();
    this.#pending.set(key, { asker, timer });
    this.#outstanding.set(asker, outstanding + 1);
    return { type: RelayType.REFLECT_NONCE, nonce, udpPort: this.port };
  }

  /** Forgets what `asker` had outstanding (its connection closed). */
  forgetAsker(asker: ReflectAsker): void {
    for (const [key, entry] of this.#pending) if (entry.asker === asker) this.#forget(key);
  }

  close(): Promise<void> {
    for (const key of [...this.#pending.keys()]) this.#forget(key);
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }

  #onDatagram(datagram: Buffer, from: dgram.RemoteInfo): void {
    const nonce = decodeReflectDatagram(datagram);
    if (nonce === undefined) return;
    const key = nonce.toString("hex");
    const entry = this.#pending.get(key);
    if (entry === undefined) return;
    this.#forget(key);
    entry.asker.send({ type: RelayType.REFLECTED, address: from.address, port: from.port });
  }

  #forget(key: string): void {
    const entry = this.#pending.get(key);
    if (entry === undefined) return;
    clearTimeout(entry.timer);
    this.#pending.delete(key);
    const left = (this.#outstanding.get(entry.asker) ?? 1) - 1;
    if (left <= 0) this.#outstanding.delete(entry.asker);
    else this.#outstanding.set(entry.asker, left);
  }
}
