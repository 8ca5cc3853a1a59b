/**
 * A stand-in for `teleport relay`'s dispatch, for the join-code tests: it greets each connection
 * with the relay's HELLO, takes SERVICE "mailbox" as its first frame, and hands the connection to
 * the mailbox service as the relay does (a RelayPeer over the socket). Only the dispatch is
 * stood in for; the mailbox is the real one.
 */
import { randomBytes } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import {
  decodeRelayMessage,
  encodeRelayFrame,
  encodeRelayMessage,
  isServiceType,
  RelayFrameDecoder,
  type RelayPeer,
  RelayType,
  relayHello,
} from "../../src/relay/relay-protocol.js";
import { mailboxService } from "../../src/rendezvous/relay-mailbox.js";

export interface MailboxRelay {
  address: string;
  service: ReturnType<typeof mailboxService>;
  close(): Promise<void>;
}

export async function startMailboxRelay(options: { maxExpireSeconds?: number } = {}): Promise<MailboxRelay> {
  const service = mailboxService(options);
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.write(relayHello(randomBytes(32)));
    dispatch(socket, service);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    address: `127.0.0.1:${port}`,
    service,
    close: async () => {
      service.mailbox.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function dispatch(socket: Socket, service: ReturnType<typeof mailboxService>): void {
  const decoder = new RelayFrameDecoder();
  let frameListener: ((type: number, body: Buffer) => void) | undefined;
  let closeListener: ((error?: Error) => void) | undefined;
  let opened = false;
  const peer: RelayPeer = {
    remoteAddress: socket.remoteAddress ?? "",
    remotePort: socket.remotePort ?? 0,
    onFrame: (listener) => {
      frameListener = listener;
    },
    onClose: (listener) => {
      closeListener = listener;
    },
    send: (type, body) => {
      socket.write(encodeRelayFrame(type, body));
    },
    refuse: (reason, detail) => {
      socket.end(encodeRelayMessage({ type: RelayType.REFUSED, reason, detail }));
    },
    close: () => socket.end(),
  };
  socket.on("close", () => closeListener?.());
  socket.on("error", () => {});
  socket.on("data", (chunk: Buffer) => {
    decoder.push(chunk);
    for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) {
      if (!opened) {
        const message = decodeRelayMessage(frame);
        if (message.type !== RelayType.SERVICE || message.name !== service.name) {
          socket.destroy();
          return;
        }
        opened = true;
        service.open(peer);
        continue;
      }
      if (!isServiceType(frame.type)) {
        socket.destroy();
        return;
      }
      frameListener?.(frame.type, Buffer.from(frame.body));
    }
  });
}
