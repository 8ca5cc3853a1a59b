/**
 * One side of a hole punch as a program, for tests in the NAT lab that need no relay splicing:
 * the PUNCH exchange goes through the test (JSON lines on stdout and stdin) instead of a control
 * connection, and everything else is the real thing: reach/'s reflection and punching from the
 * QUIC library's sockets, QUIC's handshake pinned to the host's fingerprint.
 *
 *   node punch-peer.js host HOME            prints {"port","fingerprint"}; then per stdin line (a
 *                                            PunchRequest) {"ready"} or {"error"}; {"accepted"} per stream
 *   node punch-peer.js client LINK RELAY_HOST RELAY_PORT
 *                                            prints {"punch": request}, reads the PunchReady, prints {"outcome"}
 */
import { createInterface } from "node:readline";
import { punchDirectPath } from "../../src/reach/client-punch.js";
import { HostPuncher } from "../../src/reach/host-punch.js";
import { loadOrCreateIdentity } from "../../src/transport/identity.js";
import { parseLink } from "../../src/transport/link.js";
import { quicTransport, shutdownQuic } from "../../src/transport/quic.js";
import type { PunchReady, PunchRequest } from "../../src/wire/punch-messages.js";

const say = (value: object) => process.stdout.write(`${JSON.stringify(value)}\n`);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function host(home: string): Promise<void> {
  const identity = await loadOrCreateIdentity(home);
  const listener = await quicTransport.listen(identity, { host: "0.0.0.0", port: 0 }, (stream) => {
    say({ accepted: `${stream.remoteAddress}:${stream.remotePort}` });
    stream.stream.on("error", () => {});
  });
  const puncher = new HostPuncher(listener.port);
  say({ port: listener.port, fingerprint: identity.fingerprint.toString("base64url") });
  for (let line = await lines.next(); line.done !== true; line = await lines.next()) {
    try {
      say({ ready: await puncher.answer(JSON.parse(line.value) as PunchRequest) });
    } catch (err) {
      say({ error: err instanceof Error ? err.message : String(err) });
    }
  }
  await listener.close();
}

async function client(linkText: string, relayHost: string, relayPort: number): Promise<void> {
  const peer = {
    hostPunches: true,
    async punch(request: PunchRequest): Promise<PunchReady> {
      say({ punch: request });
      const line = await lines.next();
      if (line.done === true) throw new Error("no answer to PUNCH");
      const answer = JSON.parse(line.value) as { ready?: PunchReady; error?: string };
      if (answer.ready === undefined) throw new Error(answer.error ?? "host refused");
      return answer.ready;
    },
  };
  const outcome = await punchDirectPath(peer, parseLink(linkText), { host: relayHost, port: relayPort });
  say({
    outcome: outcome.punched ? { punched: true, host: outcome.link.host, port: outcome.link.port } : outcome,
  });
  await shutdownQuic();
  process.exit(0);
}

const [role, ...args] = process.argv.slice(2);
if (role === "host") await host(args[0] ?? "");
else if (role === "client") await client(args[0] ?? "", args[1] ?? "", Number(args[2]));
else throw new Error("usage: punch-peer host HOME | client LINK RELAY_HOST RELAY_PORT");
