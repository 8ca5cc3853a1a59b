/**
 * How an OpenSSL failure is named: on an established connection, a record header that no longer
 * parses is tampering, like a record that fails its check; while dialing, it is only a peer that
 * does not speak TLS.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { test } from "node:test";
import tls from "node:tls";
import { ErrorCode, toConnectionError, toTeleportError } from "../../src/errors.js";

/** The real error OpenSSL raises when the bytes where a TLS record should start are not one. */
async function wrongVersionError(): Promise<Error> {
  const server = net.createServer((socket) => socket.end("HTTP/1.1 400 Bad Request\r\n\r\n"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as net.AddressInfo;
    return await new Promise<Error>((resolve) => {
      const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false });
      socket.once("error", resolve);
    });
  } finally {
    server.close();
  }
}

test("a record header that no longer parses, on an established connection, is TAMPERED", async () => {
  const err = await wrongVersionError();
  assert.equal((err as NodeJS.ErrnoException).code, "ERR_SSL_WRONG_VERSION_NUMBER");
  const mapped = toConnectionError(err);
  assert.equal(mapped.code, ErrorCode.TAMPERED);
  assert.match(mapped.message, /altered on the way/);
  assert.equal(toTeleportError(err, "connecting to 127.0.0.1").code, ErrorCode.IO, "dialing: not tampering");
});

test("a connection reset stays a CONNECTION error", () => {
  const reset = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
  assert.equal(toConnectionError(reset).code, ErrorCode.CONNECTION);
});
