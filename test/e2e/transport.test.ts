/**
 * The transport compliance suite (test/helpers/transport-compliance.ts), for each transport;
 * one not available here (QUIC without its native binding) is reported skipped, with why.
 */
import { plainTransport } from "../../src/transport/plain.js";
import { transportFor } from "../../src/transport/registry.js";
import { TRANSPORT_KINDS } from "../../src/transport/transport.js";
import { loopbackRelayTransport } from "../helpers/relay.js";
import { transportCompliance } from "../helpers/transport-compliance.js";

// The relay's streams go through a relay the link names: one started for each listener.
for (const kind of TRANSPORT_KINDS)
  transportCompliance(kind === "relay" ? loopbackRelayTransport : transportFor(kind));
transportCompliance(plainTransport);
// As a host takes them: beside TLS on one port, told apart by their first byte.
transportCompliance(
  {
    ...plainTransport,
    listen: (identity, bind, onStream, options) =>
      transportFor("tcp").listen(identity, bind, onStream, { ...options, allowPlaintext: true }),
  },
  `${plainTransport.name}, on a TLS listener`,
);
