/**
 * Latency as a library user sees it, from a process of its own: the time from connect to the
 * first byte of a file, a bare TLS handshake to the same host (the floor for an encrypted first
 * byte), ping round trips, and 4 KiB reads at random offsets over one open connection.
 *
 *   node dist/bench/drivers/latency-probe.js LINK REMOTE_PATH FILE_BYTES READS
 *
 * Prints one JSON object: { firstByteMs, handshakeMs, pingMs: [...], readMs: [...] }.
 */
import { randomInt } from "node:crypto";
import { TeleportClient } from "../../src/client/client.js";
import { parseLink } from "../../src/transport/link.js";
import { connectTls } from "../../src/transport/tcp.js";

const READ_BYTES = 4096;
const WARM_UP_READS = 50;

const [link, remotePath, fileBytesText, readsText] = process.argv.slice(2);
if (
  link === undefined ||
  remotePath === undefined ||
  fileBytesText === undefined ||
  readsText === undefined
) {
  throw new Error("usage: latency-probe LINK REMOTE_PATH FILE_BYTES READS");
}
const fileBytes = Number(fileBytesText);
const reads = Number(readsText);

const handshakeStarted = performance.now();
const { socket } = await connectTls(parseLink(link));
const handshakeMs = performance.now() - handshakeStarted;
socket.destroy();

const connectStarted = performance.now();
const client = await TeleportClient.connect(link);
let firstByteMs = Number.NaN;
for await (const piece of client.readRange(remotePath, 0, 1)) {
  if (piece.length > 0 && Number.isNaN(firstByteMs)) firstByteMs = performance.now() - connectStarted;
}

const pingMs: number[] = [];
for (let i = 0; i < 20; i++) pingMs.push(await client.ping());

const readMs: number[] = [];
for (let i = 0; i < WARM_UP_READS + reads; i++) {
  const offset = randomInt(0, Math.floor(fileBytes / READ_BYTES)) * READ_BYTES;
  const started = performance.now();
  let received = 0;
  for await (const piece of client.readRange(remotePath, offset, READ_BYTES)) received += piece.length;
  if (received !== READ_BYTES)
    throw new Error(`read of ${READ_BYTES} at ${offset} returned ${received} bytes`);
  if (i >= WARM_UP_READS) readMs.push(performance.now() - started);
}
await client.close();
process.stdout.write(`${JSON.stringify({ firstByteMs, handshakeMs, pingMs, readMs })}\n`);
