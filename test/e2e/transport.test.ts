/** The transport compliance suite (test/helpers/transport-compliance.ts), for each transport. */
import { tcpTransport } from "../../src/transport/tcp.js";
import { transportCompliance } from "../helpers/transport-compliance.js";

transportCompliance(tcpTransport);
