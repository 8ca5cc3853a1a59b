/**
 * Messages registered once, as protomux's `addMessage` does: each message type is described in
 * one place (its number, codec, sender and how it may travel), and each side registers its
 * handlers against those descriptions in one table. Dispatch is an array index by type number:
 * no per-frame allocation beyond the decoded body.
 */
import { type Codec, decodeMessage } from "./codec.js";

/** Which side of a connection sends a message. */
export type Peer = "client" | "host";

/** What is known of a message type whatever its body: who sends it and how it may travel. */
export interface MessageInfo {
  readonly type: number;
  /** The name in MessageType, for errors. */
  readonly name: string;
  readonly from: Peer | "either";
  /**
   * Its body may be large (over frame.ts's LARGE_BODY_THRESHOLD): the receiver assembles it into
   * a pooled buffer it gives back later. Large bodies of other types are refused.
   */
  readonly bulk: boolean;
  /**
   * It may cross a plaintext stream: anything on one may be read or changed on the way, so only
   * the handshake, flow control and chunks (checked against hashes that came over TLS) do.
   */
  readonly plaintext: boolean;
}

export interface MessageSpec<T> extends MessageInfo {
  readonly codec: Codec<T>;
}

/** Types are one byte on the wire (see frame.ts). */
const TYPE_COUNT = 256;

/** The protocol's message types, each defined once. */
export class MessageRegistry {
  readonly #messages: (MessageInfo | undefined)[] = new Array(TYPE_COUNT).fill(undefined);
  readonly #names: ReadonlyMap<number, string>;

  /** `names`: each type's name by its number (MessageType), for errors. */
  constructor(names: Readonly<Record<string, number>>) {
    this.#names = new Map(Object.entries(names).map(([name, type]) => [type, name]));
  }

  /** Describes message `type`; a type defined twice is refused. */
  define<T>(
    type: number,
    codec: Codec<T>,
    options: { from: Peer | "either"; bulk?: boolean; plaintext?: boolean },
  ): MessageSpec<T> {
    if (!Number.isInteger(type) || type < 0 || type >= TYPE_COUNT) {
      throw new RangeError(`message type ${type} is not one byte`);
    }
    const defined = this.#messages[type];
    if (defined !== undefined) throw new Error(`message type ${type} is already ${defined.name}`);
    const spec: MessageSpec<T> = {
      type,
      name: this.#names.get(type) ?? `type ${type}`,
      codec,
      from: options.from,
      bulk: options.bulk === true,
      plaintext: options.plaintext === true,
    };
    this.#messages[type] = spec;
    return spec;
  }

  /** The message of `type`, or undefined for a type this version does not know. */
  get(type: number): MessageInfo | undefined {
    return this.#messages[type];
  }

  /** Whether frames of `type` may have bodies large enough to be assembled in pooled buffers. */
  isBulk(type: number): boolean {
    return this.#messages[type]?.bulk === true;
  }

  /** Whether a plaintext stream may carry frames of `type`; unknown types may not. */
  allowsPlaintext(type: number): boolean {
    return this.#messages[type]?.plaintext === true;
  }
}

/** Handles one decoded message for `context`, the receiving side's state (a session, a client). */
export type MessageHandler<C, T> = (context: C, requestId: number, message: T) => void;

/** A handler with its message's decoding: a frame's type, request id and body in. */
type FrameHandler<C> = (context: C, requestId: number, body: Buffer) => void;

/**
 * One side's handlers, by type. Built once per kind of receiver (its context is passed in), so
 * dispatching a frame makes no closure.
 */
export class MessageHandlers<C> {
  readonly #receiver: Peer;
  readonly #handlers: (FrameHandler<C> | undefined)[] = new Array(TYPE_COUNT).fill(undefined);

  /** Handlers of the messages `receiver` is sent. */
  constructor(receiver: Peer) {
    this.#receiver = receiver;
  }

  /**
   * Registers the handler of `spec`, which receives its decoded body. A message with a handler
   * already, or one the receiver is never sent, is refused.
   */
  on<T>(spec: MessageSpec<T>, handle: MessageHandler<C, T>): this {
    if (spec.from === this.#receiver) {
      throw new Error(`${spec.name} is sent by the ${this.#receiver}, not to it`);
    }
    if (this.#handlers[spec.type] !== undefined) throw new Error(`${spec.name} has a handler already`);
    const { codec } = spec;
    this.#handlers[spec.type] = (context, requestId, body) =>
      handle(context, requestId, decodeMessage(codec, body));
    return this;
  }

  /**
   * Decodes a frame and runs its handler; false, doing nothing, for a type with no handler here
   * (the caller decides whether that ends the connection or only the request).
   */
  dispatch(context: C, type: number, requestId: number, body: Buffer): boolean {
    const handler = this.#handlers[type];
    if (handler === undefined) return false;
    handler(context, requestId, body);
    return true;
  }
}
