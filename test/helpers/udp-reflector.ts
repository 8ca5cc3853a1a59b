/**
 * A stand-in for the relay's UDP reflection (relay-protocol.ts REFLECT), for punch tests that need
 * no splicing: HELLO, REFLECT answered by REFLECT_NONCE, the nonce's datagram answered over TCP by
 * REFLECTED with the address it came from. Run as a program (in the NAT lab's relay namespace) it
 * listens on `0.0.0.0`, TCP and UDP on ports the kernel picks, and prints `TCP_PORT` once ready.
 */
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import {
  decodeReflectDatagram,
  decodeRelayMessage,
  encodeRelayMessage,
  RELAY_PROTOCOL_VERSION,
  RelayFrameDecoder,
  RelayType,
  TOKEN_BYTES,
} from "../../src/relay/relay-protocol.js";

export interface UdpReflector {
  tcpPort: number;
  /** Reflections answered so far. */
  readonly reflected: number;
  close(): Promise<void>;
}

export async function startUdpReflector(bindHost = "127.0.0.1"): Promise<UdpReflector> {
  const udp = createSocket("udp4");
  udp.bind(0, bindHost);
  await once(udp, "listening");
  const waiting = new Map<string, Socket>();
  let reflected = 0;
  udp.on("message", (datagram, from) => {
    const nonce = decodeReflectDatagram(datagram);
    const socket = nonce && waiting.get(nonce.toString("hex"));
    if (nonce === undefined || socket === undefined) return;
    waiting.delete(nonce.toString("hex"));
    reflected++;
    socket.end(encodeRelayMessage({ type: RelayType.REFLECTED, address: from.address, port: from.port }));
  });
  const server: Server = createServer((socket) => {
    socket.on("error", () => socket.destroy());
    socket.write(
      encodeRelayMessage({ type: RelayType.HELLO, version: RELAY_PROTOCOL_VERSION, nonce: randomBytes(32) }),
    );
    const decoder = new RelayFrameDecoder();
    socket.on("data", (data: Buffer) => {
      decoder.push(data);
      const frame = decoder.next();
      if (frame === undefined) return;
      if (decodeRelayMessage(frame).type !== RelayType.REFLECT) return void socket.destroy();
      const nonce = randomBytes(TOKEN_BYTES);
      waiting.set(nonce.toString("hex"), socket);
      socket.write(encodeRelayMessage({ type: RelayType.REFLECT_NONCE, nonce, udpPort: udp.address().port }));
    });
  });
  server.listen(0, bindHost);
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("reflector has no TCP port");
  return {
    tcpPort: address.port,
    get reflected() {
      return reflected;
    },
    async close() {
      udp.close();
      for (const socket of waiting.values()) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const reflector = await startUdpReflector(process.argv[2] ?? "0.0.0.0");
  console.log(reflector.tcpPort);
}
