/**
 * Hijacking a `--no-encryption` stream from the path: a relay between `teleport pull` and
 * `teleport host` passes the plaintext handshake through (it cannot make the secret's proof, but
 * need not), then sends a GET_CHUNKS of its own for a file the pull never listed, or rewrites the
 * client's GET_CHUNKS into one. The host must drop the stream (its requests fail their MAC) and
 * serve the relay nothing; the pull completes or fails cleanly.
 */
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { hashBytes } from "../../src/chunking/hash.js";
import { encodeFrame } from "../../src/engine/connection.js";
import { parseLink } from "../../src/transport/link.js";
import { decodeMessage } from "../../src/wire/codec.js";
import { errorCodec, getChunksRequestCodec, MessageType } from "../../src/wire/messages.js";
import { runCli, STACK_TRACE_LINE } from "../helpers/cli.js";
import { onCleanup } from "../helpers/context.js";
import { linkToPort } from "../helpers/ports.js";
import { hostWithCli, makeShare } from "../helpers/share.js";
import { compareTrees, MiB, pseudoRandomBytes } from "../helpers/tree.js";

const SECRET = Buffer.from("never listed to the puller: a private key 7d3a\n".repeat(100));
/** The plaintext preambles: the client's magic and nonce, the host's nonce. */
const CLIENT_PREAMBLE_BYTES = 16 + 32;
const HOST_PREAMBLE_BYTES = 32;
const TLS_HANDSHAKE_BYTE = 0x16;
/** The request id the relay's own GET_CHUNKS takes (a client counts up from 1). */
const INJECTED_ID = 0x7ffffff0;

type Attack = "inject" | "rewrite";

interface RelayReport {
  plaintextStreams: number;
  /** Whether the attack's request reached the host. */
  attacked: boolean;
  /** Chunk bytes the host sent in answer to the relay's request. */
  stolen: Buffer[];
  /** Error codes the host sent on attacked streams. */
  hostErrors: string[];
}

/** Frames `[u32 length][u8 type][u32 requestId][body]` cut from a byte stream as they complete. */
class FrameCutter {
  #pending = Buffer.alloc(0);
  #skipLeft: number;

  constructor(skip: number) {
    this.#skipLeft = skip;
  }

  /** Raw bytes before frames (a preamble), then whole frames. */
  push(data: Buffer): { raw: Buffer; frames: Buffer[] } {
    this.#pending = Buffer.concat([this.#pending, data]);
    const rawLength = Math.min(this.#skipLeft, this.#pending.length);
    const raw = this.#pending.subarray(0, rawLength);
    this.#skipLeft -= rawLength;
    let rest = this.#pending.subarray(rawLength);
    const frames: Buffer[] = [];
    while (rest.length >= 4 && rest.length >= 4 + rest.readUInt32LE(0)) {
      const length = 4 + rest.readUInt32LE(0);
      frames.push(Buffer.from(rest.subarray(0, length)));
      rest = rest.subarray(length);
    }
    this.#pending = Buffer.from(rest);
    return { raw: Buffer.from(raw), frames };
  }
}

const frameType = (frame: Buffer) => frame[4] ?? 0;
const frameRequestId = (frame: Buffer) => frame.readUInt32LE(5);
const frameBody = (frame: Buffer) => frame.subarray(9);

/** The relay's GET_CHUNKS for the secret file, under `requestId`. */
function stealingRequest(requestId: number): Buffer {
  const chunk = { hash: hashBytes(SECRET), size: SECRET.length, path: "secret.txt", offset: 0 };
  return encodeFrame(MessageType.GET_CHUNKS, requestId, getChunksRequestCodec, { chunks: [chunk] });
}

/** Relays TLS untouched; on the first plaintext stream, attacks once HELLO has gone through. */
async function startRelay(
  hostPort: number,
  attack: Attack,
): Promise<{ server: Server; port: number; report: RelayReport }> {
  const report: RelayReport = { plaintextStreams: 0, attacked: false, stolen: [], hostErrors: [] };
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const host = createConnection({ host: "127.0.0.1", port: hostPort });
    for (const socket of [client, host]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {});
    }
    client.on("close", () => host.destroy());
    host.on("close", () => client.destroy());
    client.once("data", (first: Buffer) => {
      if (first[0] === TLS_HANDSHAKE_BYTE) {
        host.write(first);
        client.pipe(host);
        host.pipe(client);
      } else {
        report.plaintextStreams++;
        attackPlaintext(client, host, first, attack, report);
      }
    });
  });
  server.on("close", () => {
    for (const socket of sockets) socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  return { server, port: address.port, report };
}

function attackPlaintext(
  client: Socket,
  host: Socket,
  first: Buffer,
  attack: Attack,
  report: RelayReport,
): void {
  const attacking = !report.attacked;
  report.attacked = true;
  let hijackedId: number | undefined = attacking && attack === "inject" ? INJECTED_ID : undefined;
  const up = new FrameCutter(CLIENT_PREAMBLE_BYTES);
  const down = new FrameCutter(HOST_PREAMBLE_BYTES);
  const fromClient = (data: Buffer) => {
    const { raw, frames } = up.push(data);
    host.write(raw);
    for (const frame of frames) {
      if (
        attacking &&
        attack === "rewrite" &&
        hijackedId === undefined &&
        frameType(frame) === MessageType.GET_CHUNKS
      ) {
        hijackedId = frameRequestId(frame);
        host.write(stealingRequest(hijackedId));
        continue;
      }
      host.write(frame);
      if (attacking && attack === "inject" && frameType(frame) === MessageType.HELLO)
        host.write(stealingRequest(INJECTED_ID));
    }
  };
  fromClient(first);
  client.on("data", fromClient);
  host.on("data", (data: Buffer) => {
    const { raw, frames } = down.push(data);
    client.write(raw);
    for (const frame of frames) {
      const type = frameType(frame);
      if (attacking && type === MessageType.ERROR)
        report.hostErrors.push(decodeMessage(errorCodec, frameBody(frame)).code);
      if (hijackedId !== undefined && frameRequestId(frame) === hijackedId) {
        if (type === MessageType.CHUNK_DATA) report.stolen.push(frameBody(frame).subarray(32));
        if (attack === "inject") continue; // the client never asked: it would not know the id
      }
      client.write(frame);
    }
  });
}

async function hijack(t: TestContext, attack: Attack): Promise<void> {
  const { base, share } = await makeShare(t, `plaintext-relay-${attack}`);
  await mkdir(join(share, "pub"));
  await writeFile(join(share, "pub", "big.bin"), pseudoRandomBytes(4 * MiB, "relay"));
  await writeFile(join(share, "pub", "small.txt"), "listed to the puller\n");
  await writeFile(join(share, "secret.txt"), SECRET);
  const host = await hostWithCli(t, { base, share, args: ["--allow-no-encryption"] });
  const relay = await startRelay(parseLink(host.link).port, attack);
  onCleanup(t, () => new Promise<void>((resolve) => relay.server.close(() => resolve())));
  const dest = join(base, "dest");
  const env = { TELEPORT_HOME: join(base, "client-home") };
  const pulled = await runCli(
    [
      "pull",
      linkToPort(host.link, relay.port),
      dest,
      "--no-encryption",
      "--transport",
      "tcp",
      "--path",
      "pub",
    ],
    env,
  );
  const { report } = relay;
  assert.ok(report.plaintextStreams > 0 && report.attacked, "the pull's data streams went through the relay");
  assert.deepEqual(
    report.stolen.filter((bytes) => bytes.includes(SECRET.subarray(0, 40))),
    [],
    "the relay read a file never listed to the puller",
  );
  assert.ok(
    report.hostErrors.some((code) => code === "TELEPORT_ERR_AUTH" || code === "TELEPORT_ERR_PROTOCOL"),
    `the host dropped the hijacked stream (errors it sent: ${report.hostErrors})`,
  );
  assert.doesNotMatch(pulled.stderr, STACK_TRACE_LINE);
  if (pulled.code === 0) await compareTrees(join(share, "pub"), join(dest, "pub"));
  else assert.match(pulled.stderr, /TELEPORT_ERR_/);
}

test("a relay on the path injects a GET_CHUNKS for an unlisted file into a --no-encryption stream: refused", async (t) => {
  await hijack(t, "inject");
});

test("a relay on the path rewrites a --no-encryption stream's GET_CHUNKS: refused", async (t) => {
  await hijack(t, "rewrite");
});
