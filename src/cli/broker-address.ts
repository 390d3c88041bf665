/**
 * Where `warren broker` looks for RabbitMQ: the target address (WARREN_ADDRESS, or the first URL
 * of a list there, its port replaced by WARREN_BROKER_PORT) parsed with `URL`, whether its host is this machine, and the probe that
 * tells a broker speaking AMQP 0-9-1 there from a closed port or another server.
 *
 * The user, password and vhost are kept decoded for the broker `start` creates; nothing here
 * prints them, and a malformed address is never echoed.
 */
import * as net from "node:net";
import * as os from "node:os";
import { brokerAddress } from "../transport";
import { brokerUrls } from "../address";
import { UsageError } from "./common";

export interface BrokerTarget {
  /** The address as URL serializes it (so that redactAddress finds its password), for messages. */
  address: string;
  scheme: "amqp" | "amqps";
  /** Without the brackets of an IPv6 literal. */
  host: string;
  port: number;
  user?: string;
  password?: string;
  vhost?: string;
}

const DEFAULT_PORTS = { amqp: 5672, amqps: 5671 } as const;

/** A port number from text: digits only, 1 to 65535. */
function portNumber(text: string, what: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port < 1 || port > 65535) throw new UsageError(`${what} must be a port number from 1 to 65535 (got ${JSON.stringify(text)})`);
  return port;
}

/** The target from the environment; a malformed WARREN_ADDRESS or WARREN_BROKER_PORT is a UsageError. */
export function brokerTarget(): BrokerTarget {
  const port = process.env.WARREN_BROKER_PORT;
  // A malformed address is not echoed: where the URL syntax is broken, so may be the redaction.
  let url: URL;
  try {
    url = new URL(brokerUrls(brokerAddress())[0] ?? "");
  } catch {
    throw new UsageError("WARREN_ADDRESS is not a valid URL: expected amqp://user:pass@host:port/vhost, with a port from 1 to 65535 and %-escapes for special characters");
  }
  const scheme = url.protocol.slice(0, -1);
  const hierarchical = url.href.startsWith(`${url.protocol}//`);
  if ((scheme !== "amqp" && scheme !== "amqps") || !hierarchical) {
    throw new UsageError(`WARREN_ADDRESS must be an amqp:// or amqps:// URL, like amqp://user:pass@host:port/vhost (it starts with "${url.protocol}${hierarchical ? "//" : ""}")`);
  }
  const decoded = (s: string) => {
    try {
      return s === "" ? undefined : decodeURIComponent(s);
    } catch {
      throw new UsageError("WARREN_ADDRESS has a malformed %-escape in its user, password or vhost (write % as %25)");
    }
  };
  return {
    address: url.href,
    scheme,
    host: url.hostname.replace(/^\[(.*)\]$/, "$1") || "127.0.0.1",
    port: port ? portNumber(port, "WARREN_BROKER_PORT") : url.port ? Number(url.port) : DEFAULT_PORTS[scheme],
    user: decoded(url.username),
    password: decoded(url.password),
    vhost: decoded(url.pathname.slice(1)),
  };
}

/** Whether the target host is this machine (a broker can only be started there). */
export function isLocal(host: string): boolean {
  return ["localhost", "localhost.localdomain", "::1", "0.0.0.0", os.hostname()].includes(host) || host.startsWith("127.");
}

/** `host:port`, with brackets around an IPv6 host. */
export function hostPort(host: string, port: number): string {
  return `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
}

/**
 * What answers at host:port:
 * - `amqp`    a server that replied to the AMQP 0-9-1 header with Connection.Start;
 * - `header`  a server that replied with its own protocol header (another AMQP version);
 * - `silent`  it accepted the TCP connection but sent nothing usable in time;
 * - `closed`  nothing accepts TCP connections there.
 */
export type Probe = "amqp" | "header" | "silent" | "closed";

const AMQP_0_9_1_HEADER = Buffer.from("AMQP\x00\x00\x09\x01", "latin1");

/** Connects, sends the AMQP 0-9-1 header and reads the first 11 bytes of the reply. */
export function probe(host: string, port: number, timeoutMs = 3000): Promise<Probe> {
  return new Promise((resolve) => {
    let reply = Buffer.alloc(0);
    let connected = false;
    const socket = net.connect({ host, port });
    const done = (result: Probe) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const classify = (): Probe => {
      // A method frame (type 1) on channel 0, 4 bytes of size, then class 10 (connection), method 10 (start).
      if (reply.length >= 11 && reply.readUInt8(0) === 1 && reply.readUInt16BE(1) === 0 && reply.readUInt32BE(7) === 0x000a000a) return "amqp";
      return reply.subarray(0, 4).toString("latin1") === "AMQP" ? "header" : "silent";
    };
    const timer = setTimeout(() => done(connected ? classify() : "closed"), timeoutMs);
    socket.on("connect", () => {
      connected = true;
      socket.write(AMQP_0_9_1_HEADER);
    });
    socket.on("data", (chunk: Buffer) => {
      reply = Buffer.concat([reply, chunk]);
      if (reply.length >= 11) done(classify());
    });
    socket.on("end", () => done(classify()));
    socket.on("error", () => done(connected ? classify() : "closed"));
  });
}

/** Whether something accepts TCP connections at 127.0.0.1:port. */
export async function portInUse(port: number): Promise<boolean> {
  return (await probe("127.0.0.1", port, 2000)) !== "closed";
}
