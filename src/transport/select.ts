/**
 * Which transport reaches a host. `tcp` and `quic` are what they say; `auto` races them, happy
 * eyeballs style (RFC 8305): TLS over TCP first, as the faster path through Node here
 * (docs/decisions.md), and QUIC as soon as TCP fails, or if TCP has not connected within
 * QUIC_HEAD_START_MS. TCP is preferred: QUIC, once through, waits as long again as its own
 * handshake took for TCP (on a long path TCP's handshake legitimately takes longer than the head
 * start), then wins; whichever is not used is dropped. So a network that blocks UDP costs
 * nothing, and one that silently drops TCP costs a quarter of a second and two round trips.
 *
 * A TCP connection that is up (the host's kernel answered) is not blocked, only slow to finish
 * TLS: a busy host. It is waited for until it succeeds or fails, and QUIC taken only then; a busy
 * host would be no faster over QUIC, and its transfer slower.
 *
 * A link that names relays adds a third leg under `auto`: the relay is dialed once the direct
 * race fails, or has not connected within RELAY_HEAD_START_MS; whichever stream is ready first
 * is used (a direct one that connected in time is always waited for). `--transport relay` dials
 * only the relays, `tcp` and `quic` only the host's address. */
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import type { ShareLink } from "./link.js";
import { quicTransport } from "./quic.js";
import { transportFor } from "./registry.js";
import { relayTransport } from "./relay.js";
import { tcpTransport } from "./tcp.js";
import type { DialOptions, TransportChoice, TransportStream } from "./transport.js";

export { transportFor } from "./registry.js";

export { TRANSPORT_CHOICES, type TransportChoice } from "./transport.js";

const QUIC_HEAD_START_MS = 250;
/**
 * How long the host's own address has before a relay is dialed as well: a direct path that
 * exists answers a TCP SYN within a round trip (and, once it has, is waited for), and a host
 * behind NAT never does (the SYN is dropped, or refused at once, which starts the relay at once).
 * Just after QUIC's head start, so that a direct QUIC path (TCP blocked) is not beaten by the
 * relay's longer handshake; every millisecond more is one before a NATed host's first byte
 * (docs/decisions.md, "Path choice").
 */
const RELAY_HEAD_START_MS = 300;
/**
 * The longest a fallback QUIC handshake may take: the binding ignores ICMP, so a host that is
 * simply not running would otherwise hold every pull to it for the whole handshake timeout. A
 * busy host drops datagrams, and an Initial lost twice arrives after its retransmission timer
 * doubled twice (~7 s): shorter limits failed clients of a host serving 32 pulls at once
 * (docs/decisions.md, "The QUIC fallback under load"). The preamble after the handshake is not
 * held to this: a host that is there but busy answers it late.
 */
const QUIC_FALLBACK_MS = 8000;

export interface ChoiceOptions extends DialOptions {
  /** Told when `auto` used QUIC because TCP did not get through, and why. */
  onNotice?: (message: string) => void;
  /** Told when TCP to the host's address failed (QUIC may still be tried): a relay starts then. */
  onTcpFailed?: () => void;
  /**
   * How long the host's own address has before a link's relay is dialed beside it (default
   * RELAY_HEAD_START_MS); 0 where the caller already knows it met the host at a relay.
   */
  relayHeadStartMs?: number;
}

/** A stream to the host of `link` over the chosen transport. */
export function dialChoice(
  link: ShareLink,
  choice: TransportChoice,
  options: ChoiceOptions = {},
): Promise<TransportStream> {
  if (choice !== "auto") return transportFor(choice).dial(link, options);
  if ((link.relays ?? []).length === 0) return dialDirect(link, options);
  return withRelay(link, options);
}

/** The host's own address, TCP and QUIC raced where QUIC is available. */
function dialDirect(link: ShareLink, options: ChoiceOptions): Promise<TransportStream> {
  if (!quicTransport.available) return tcpTransport.dial(link, options);
  return race(link, options);
}

/**
 * The host's own address first, a relay once it fails or has not connected within
 * RELAY_HEAD_START_MS; the first stream ready wins, the other is cancelled or dropped.
 */
function withRelay(link: ShareLink, options: ChoiceOptions): Promise<TransportStream> {
  const { signal, onNotice, relayHeadStartMs = RELAY_HEAD_START_MS, ...dialOptions } = options;
  const direct = new AbortController();
  const relayed = new AbortController();
  const onAbort = () => {
    direct.abort();
    relayed.abort();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  return new Promise<TransportStream>((resolve, reject) => {
    let winner: TransportStream | undefined;
    let directError: TeleportError | undefined;
    let relayError: TeleportError | undefined;
    let relayStarted = false;
    let directConnected = false;
    const accept = (stream: TransportStream) => {
      if (winner !== undefined) {
        stream.stream.destroy();
        return;
      }
      winner = stream;
      clearTimeout(headStart);
      signal?.removeEventListener("abort", onAbort);
      (stream.transport === "relay" ? direct : relayed).abort();
      if (stream.transport === "relay")
        onNotice?.(
          `${link.host}:${link.port} ${directError === undefined ? "did not answer directly" : `failed (${directError.detail})`}; through the relay`,
        );
      resolve(stream);
    };
    const settle = () => {
      if (winner !== undefined || directError === undefined || !relayStarted || relayError === undefined)
        return;
      signal?.removeEventListener("abort", onAbort);
      reject(directAndRelayFailed(link, directError, relayError));
    };
    const startRelay = () => {
      if (relayStarted || winner !== undefined) return;
      relayStarted = true;
      relayTransport.dial(link, { ...dialOptions, signal: relayed.signal }).then(accept, (err: unknown) => {
        relayError = toTeleportError(err);
        settle();
      });
    };
    const headStart = setTimeout(() => directConnected || startRelay(), relayHeadStartMs);
    const onConnected = () => {
      directConnected = true;
      options.onConnected?.();
    };
    dialDirect(link, {
      ...dialOptions,
      signal: direct.signal,
      onConnected,
      onTcpFailed: startRelay,
      ...(onNotice ? { onNotice } : {}),
    }).then(accept, (err: unknown) => {
      directError = toTeleportError(err);
      if (signal?.aborted === true) relayed.abort();
      startRelay();
      settle();
    });
  });
}

function directAndRelayFailed(link: ShareLink, direct: TeleportError, relay: TeleportError): TeleportError {
  if (direct.code === ErrorCode.CANCELLED) return direct;
  const code = relay.code === ErrorCode.FINGERPRINT ? relay.code : direct.code;
  return new TeleportError(
    code,
    `could not reach ${link.host}:${link.port} directly (${direct.detail}) nor through a relay (${relay.detail})`,
  );
}

function race(link: ShareLink, options: ChoiceOptions): Promise<TransportStream> {
  const { onNotice, onTcpFailed, ...dialOptions } = options;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    let winner: TransportStream | undefined;
    let tcpError: TeleportError | undefined;
    let quicError: TeleportError | undefined;
    let quicStarted = false;
    /** TCP's connection is up: only its TLS handshake is pending. */
    let tcpConnected = false;
    /** QUIC's stream, held while TCP gets its grace. */
    let held: TransportStream | undefined;
    let grace: NodeJS.Timeout | undefined;
    const settle = () => {
      if (winner !== undefined || tcpError === undefined || (quicStarted && quicError === undefined)) return;
      reject(bothFailed(link, tcpError, quicError));
    };
    const accept = (stream: TransportStream) => {
      if (winner !== undefined) {
        stream.stream.destroy();
        return;
      }
      winner = stream;
      clearTimeout(headStart);
      clearTimeout(grace);
      if (stream !== held) held?.stream.destroy();
      if (stream.transport === "quic") {
        const tcp =
          tcpError === undefined
            ? `did not connect within ${Math.round(performance.now() - started)} ms`
            : `failed (${tcpError.detail})`;
        onNotice?.(`TCP to ${link.host}:${link.port} ${tcp}; using QUIC`);
      }
      resolve(stream);
    };
    const quicReady = (stream: TransportStream, quicMs: number) => {
      if (winner !== undefined || tcpError !== undefined) {
        accept(stream);
        return;
      }
      // TCP may just be slower to shake hands (two round trips, like QUIC with its preamble):
      // it gets as long again as QUIC took before QUIC is taken for it, and all the time it
      // needs once it is connected.
      held = stream;
      if (!tcpConnected) grace = setTimeout(() => accept(stream), quicMs);
    };
    const onTcpConnected = () => {
      tcpConnected = true;
      clearTimeout(grace);
      dialOptions.onConnected?.();
    };
    const startQuic = () => {
      if (quicStarted || winner !== undefined) return;
      quicStarted = true;
      const quicFrom = performance.now();
      quicTransport.dial(link, { ...dialOptions, quicHandshakeTimeoutMs: QUIC_FALLBACK_MS }).then(
        (stream) => quicReady(stream, performance.now() - quicFrom),
        (err: unknown) => {
          quicError = toTeleportError(err);
          settle();
        },
      );
    };
    // A busy host is not asked for a QUIC handshake as well while it finishes TCP's.
    const headStart = setTimeout(() => tcpConnected || startQuic(), QUIC_HEAD_START_MS);
    tcpTransport.dial(link, { ...dialOptions, onConnected: onTcpConnected }).then(accept, (err: unknown) => {
      tcpError = toTeleportError(err);
      // A host that is not the link's host over TCP will not be over QUIC either.
      if (tcpError.code === ErrorCode.FINGERPRINT || tcpError.code === ErrorCode.CANCELLED) {
        clearTimeout(headStart);
        held?.stream.destroy();
        reject(tcpError);
        return;
      }
      if (held !== undefined) accept(held);
      onTcpFailed?.();
      startQuic();
      settle();
    });
  });
}

function bothFailed(link: ShareLink, tcp: TeleportError, quic: TeleportError | undefined): TeleportError {
  if (quic === undefined) return tcp;
  const code = quic.code === ErrorCode.FINGERPRINT ? quic.code : tcp.code;
  return new TeleportError(
    code,
    `could not reach ${link.host}:${link.port} over TCP (${tcp.detail}) nor QUIC (${quic.detail})`,
  );
}
