/**
 * What the host does with an upload (Feature.UPLOAD): the receiver is given by whoever starts
 * the host (push/upload-receiver.ts), as it pulls from the pusher over the connection once the
 * two have swapped roles, with the client's machinery, which sits above host/.
 */
import type { Socket } from "node:net";
import type { TransportStream } from "../transport/transport.js";
import type { UploadRequest } from "../wire/messages.js";

export interface UploadReceiver {
  /**
   * Checks an upload before anything is written (its place in the share, the quota, free space)
   * and throws to refuse it. `routed`: the pusher sends its TCP data streams' tokens as routes
   * (Feature.ROUTED_STREAMS).
   */
  accept(request: UploadRequest, clientId: string | undefined, routed: boolean): Promise<AcceptedUpload>;
  /**
   * A TCP connection that came with `route` before its TLS handshake (the listener's
   * routeStream): taken if a data stream an upload's pull wants elsewhere has that token, else
   * left to go through TLS here.
   */
  routeStream(route: Buffer, socket: Socket): boolean;
  /**
   * A data stream the pusher dialed (UPLOAD_STREAM), if `token` is one an upload's pull asked
   * the same client (Hello.clientId, hex) for and has not had; throws to refuse it.
   */
  takeStream(token: Buffer, clientId: string | undefined): AcceptedUpload;
  /** Stops what the receiver runs in the background (the share's indexing); the host closes it before the share. */
  close(): void;
}

export interface AcceptedUpload {
  /**
   * Runs the upload (or one of its data streams) over `stream`, on which the host is now the
   * client, proving `secret` (the write secret the pusher proved); settles as it ends, with the
   * bytes the upload took from the network (0 for a data stream: its upload counts them).
   */
  receive(stream: TransportStream, secret: Buffer): Promise<number>;
}
