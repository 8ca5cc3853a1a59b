/**
 * How the host sets up each TCP connection it accepts, in whichever thread accepts it: the
 * congestion control and how much unsent data the kernel may hold.
 */
import type { Socket } from "node:net";
import { platformIo } from "../platform/io.js";
import type { ListenOptions } from "../transport/transport.js";
import { DEFAULT_CONGESTION } from "./congestion.js";

/**
 * Unsent bytes a connection's kernel buffer holds before the socket stops taking more
 * (TCP_NOTSENT_LOWAT): what is in flight is not limited, only what waits behind it, which the
 * kernel otherwise lets grow to tens of MB at no gain (docs/decisions.md, "TCP_NOTSENT_LOWAT").
 * Kept here instead, bytes stay cancellable, and the host's send budget sees them.
 */
const NOTSENT_LOWAT_BYTES = 1024 * 1024;

/**
 * Sets the congestion control on each accepted TCP connection (`congestion`: the user's choice,
 * undefined for DEFAULT_CONGESTION, `system` for the kernel's). A choice the kernel does not
 * offer leaves the system's; that is said once, when it was the user's choice.
 */
export function tuneSocketsFor(
  congestion: string | undefined,
  onNotice: ((message: string) => void) | undefined,
): Pick<ListenOptions, "tuneSocket"> {
  const wanted = congestion ?? DEFAULT_CONGESTION;
  let told = congestion === undefined;
  return {
    tuneSocket: (socket: Socket) => {
      platformIo.setNotSentLowat(socket, NOTSENT_LOWAT_BYTES);
      if (wanted === "system") return;
      const inEffect = platformIo.setCongestion(socket, wanted);
      if (inEffect === wanted || told) return;
      told = true;
      onNotice?.(
        inEffect === undefined
          ? `cannot set TCP congestion control ${wanted} without the native addon; the system's is used`
          : `TCP congestion control ${wanted} is not available here; the system's (${inEffect}) is used`,
      );
    },
  };
}
