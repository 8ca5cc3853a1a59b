/** The transport compliance suite (test/helpers/transport-compliance.ts), for each transport. */
import { quicAvailable, quicTransport } from "../../src/transport/quic.js";
import { tcpTransport } from "../../src/transport/tcp.js";
import { transportCompliance } from "../helpers/transport-compliance.js";

transportCompliance(tcpTransport);
// The binding is an optional dependency with prebuilt binaries for a few platforms; where npm
// installed it (Linux x64 here and in CI) the suite must pass.
if (quicAvailable) transportCompliance(quicTransport);
