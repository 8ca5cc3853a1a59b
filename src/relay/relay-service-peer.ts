/**
 * The relay's side of a connection handed to a mounted service: a RelayPeer over the RelayLink,
 * carrying frames of the service's types only (anything else is refused as UNEXPECTED), with the
 * link's bounds (frame rate, idle timeout) still in force.
 */
import { ErrorCode, TeleportError } from "../errors.js";
import type { RelayLink } from "./relay-link.js";
import { isServiceType, RefusalReason, type RelayPeer } from "./relay-protocol.js";

export function servicePeerOf(link: RelayLink): RelayPeer {
  let onFrame: ((type: number, body: Buffer) => void) | undefined;
  const closeListeners: ((error?: Error) => void)[] = [];
  link.serviceFrames = true;
  link.events = {
    onMessage: () => link.refuse(RefusalReason.UNEXPECTED, "a service connection takes the service's frames"),
    onServiceFrame: (type, body) => {
      if (!isServiceType(type)) link.refuse(RefusalReason.UNEXPECTED, "not a service frame");
      else onFrame?.(type, body);
    },
    onClose: (error) => {
      for (const listener of closeListeners.splice(0)) listener(error);
    },
  };
  return {
    remoteAddress: link.remoteAddress,
    remotePort: link.remotePort,
    onFrame(listener) {
      onFrame = listener;
    },
    onClose(listener) {
      closeListeners.push(listener);
    },
    send(type, body) {
      if (!isServiceType(type))
        throw new TeleportError(ErrorCode.USAGE, `0x${type.toString(16)} is not a service frame type`);
      link.sendFrame(type, body);
    },
    refuse(reason, detail) {
      link.refuse(reason, detail);
    },
    close() {
      link.close();
    },
  };
}
