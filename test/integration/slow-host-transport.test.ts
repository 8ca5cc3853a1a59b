/**
 * A busy host that answers TLS late must not move a pull to a slower transport: `auto` falls back
 * to QUIC when TCP fails or gets no answer, not when a connected TCP is merely slow to finish
 * its handshake. The busy host is a relay that holds TCP data (TCP's connection is up at once,
 * as a host's kernel answers it however busy the host is) and passes UDP straight through.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseLink } from "../../src/transport/link.js";
import { quicAvailable } from "../../src/transport/quic.js";
import { dialChoice } from "../../src/transport/select.js";
import { onCleanup } from "../helpers/context.js";
import { linkToPort } from "../helpers/ports.js";
import { startShapedPath } from "../helpers/shaped-path.js";
import { hostInProcess, makeShare } from "../helpers/share.js";

const skip = quicAvailable ? false : "QUIC's native binding is not installed on this platform";

test("a TCP connection the host finishes slowly stays on TCP under auto, with no notice of QUIC", {
  skip,
}, async (t) => {
  const { base, share } = await makeShare(t, "slow-host", { "a.txt": "inside\n" });
  const host = await hostInProcess(t, { base, share });
  // TLS takes a round trip of 1.2 s here; QUIC gets through in a few milliseconds.
  const path = await startShapedPath(host.port, { tcp: { delayMs: 600 }, udp: { delayMs: 0 } });
  onCleanup(t, () => path.close());
  const notices: string[] = [];
  const stream = await dialChoice(parseLink(linkToPort(host.url, path.port)), "auto", {
    onNotice: (message) => notices.push(message),
  });
  stream.stream.destroy();
  assert.equal(stream.transport, "tcp");
  assert.deepEqual(notices, []);
});
