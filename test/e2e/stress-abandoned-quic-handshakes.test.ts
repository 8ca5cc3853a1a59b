/**
 * Clients that give up on a QUIC handshake must not stop the host answering QUIC. A pull under
 * load does give up: it closes its endpoint with data streams still connecting, so the host sees
 * the handshake closed by its peer. The binding rejects that accept as it rejects a closed
 * server's, and the host's accept loops (16 wait at once) each ended on the first one: after 16
 * such clients, a real host answered no QUIC client again (the stress runs' fallback pulls then
 * failed with "QUIC handshake ...: nothing within 2000 ms").
 *
 * A client in this process opens handshakes through a relay that passes its datagrams to a real
 * `teleport host` and drops the host's answers, so each handshake is still in flight when the
 * client closes it; then a real `teleport pull --transport quic` must get through.
 */
import assert from "node:assert/strict";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { parseLink } from "../../src/transport/link.js";
import { quicAvailable } from "../../src/transport/quic.js";
import { clientEndpoint, shutdownQuic } from "../../src/transport/quic-binding.js";
import { clientKey } from "../../src/transport/quic-identity.js";
import { runCli } from "../helpers/cli.js";
import { onCleanup } from "../helpers/context.js";
import { hostWithCli, makeShare } from "../helpers/share.js";

const skip = quicAvailable ? false : "QUIC's native binding is not installed on this platform";

/** Three times the accepts a host keeps waiting: each used to be ended by one abandoned handshake. */
const ABANDONED_HANDSHAKES = 48;
/** How long the host may take to answer a client's first flight, or the relay to pass a datagram on. */
const DATAGRAM_WAIT_MS = 10_000;

/** Passes a client's datagrams to the host and drops the host's answers, counting both. */
class OneWayRelay {
  readonly #front: UdpSocket = createSocket("udp4");
  readonly #back: UdpSocket = createSocket("udp4");
  readonly #counts = { up: 0, down: 0 };
  readonly #waiting = new Set<() => void>();

  static async start(hostPort: number): Promise<OneWayRelay> {
    const relay = new OneWayRelay();
    relay.#front.on("message", (datagram) => {
      relay.#back.send(datagram, hostPort, "127.0.0.1");
      relay.#passed("up");
    });
    relay.#back.on("message", () => relay.#passed("down"));
    for (const socket of [relay.#front, relay.#back]) {
      socket.bind(0, "127.0.0.1");
      await once(socket, "listening");
    }
    return relay;
  }

  get port(): number {
    return this.#front.address().port;
  }

  count(direction: "up" | "down"): number {
    return this.#counts[direction];
  }

  /** Resolves true once more than `seen` datagrams went `direction`, false after `timeoutMs`. */
  async passed(direction: "up" | "down", seen: number, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (this.#counts[direction] <= seen) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#waiting.add(done);
      });
    }
    return true;
  }

  #passed(direction: "up" | "down"): void {
    this.#counts[direction]++;
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const wake of waiting) wake();
  }

  close(): void {
    this.#front.close();
    this.#back.close();
  }
}

/**
 * Starts a handshake through `relay` and closes this process's QUIC endpoint once the host has
 * answered it; false if the host did not answer.
 */
async function abandonHandshake(relay: OneWayRelay): Promise<boolean> {
  const { client } = clientEndpoint(clientKey);
  const answers = relay.count("down");
  const dial = client.outboundConnection("127.0.0.1", relay.port).then(
    (connection) => connection.abort(),
    () => {},
  );
  const answered = await relay.passed("down", answers, DATAGRAM_WAIT_MS);
  const sent = relay.count("up");
  await shutdownQuic();
  // The endpoint's close reaches the host before the next handshake starts.
  await relay.passed("up", sent, DATAGRAM_WAIT_MS);
  await dial;
  return answered;
}

test("a host answers QUIC pulls after many clients closed their handshakes half way", {
  skip,
}, async (t) => {
  const content = "still answering\n";
  const { base, share, env } = await makeShare(t, "abandoned-handshakes", { "a.txt": content });
  const host = await hostWithCli(t, { base, share });
  const relay = await OneWayRelay.start(parseLink(host.link).port);
  onCleanup(t, () => relay.close());
  onCleanup(t, () => shutdownQuic());

  let answered = 0;
  while (answered < ABANDONED_HANDSHAKES && (await abandonHandshake(relay))) answered++;
  assert.equal(answered, ABANDONED_HANDSHAKES, "the host answered every handshake's first flight");

  const dest = join(base, "dest");
  const pull = await runCli(["pull", host.link, dest, "--transport", "quic", "--json"], env);
  assert.equal(pull.code, 0, pull.stderr);
  assert.equal(await readFile(join(dest, "a.txt"), "utf8"), content);
});
