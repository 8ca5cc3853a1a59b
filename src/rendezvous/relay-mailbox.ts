/**
 * The mailbox as a service of `teleport relay`: a connection whose first frame is SERVICE
 * "mailbox" is handed here (relay-protocol.ts RelayService), and is then a sender's or a
 * receiver's connection to the one Mailbox the relay holds.
 */
import type { RelayService } from "../relay/relay-protocol.js";
import { Mailbox, type MailboxOptions } from "./mailbox.js";
import { MailboxConnection } from "./mailbox-connection.js";
import { MAILBOX_SERVICE } from "./mailbox-protocol.js";

export function mailboxService(options: MailboxOptions = {}): RelayService & { readonly mailbox: Mailbox } {
  const mailbox = new Mailbox(options);
  return {
    name: MAILBOX_SERVICE,
    mailbox,
    open: (peer) => mailbox.accept(MailboxConnection.overRelayPeer(peer)),
    close: () => mailbox.close(),
  };
}
