/**
 * head: the web dashboard (Ray's, on port 8265), served by the head node's daemon. The page is
 * plain HTML, CSS and JavaScript from the package's `dashboard/` folder (no build step for users;
 * they ship as they are, listed in package.json `files`); it polls the JSON routes under `/api/`
 * (head/dashboard-views.ts), which are also there for scripts. node:http rather than a web
 * framework: a few GET routes and three files need no router, and the package no dependency.
 */
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import type { AddressInfo } from "node:net";
import { WarrenError } from "../errors";
import { PACKAGE_ROOT } from "../core/paths";
import { nodeIp } from "../node/resources";

export const DASHBOARD_DEFAULTS = {
  /** Only this machine can reach it unless asked for another interface (dashboardHost, --dashboard-host). */
  host: "127.0.0.1",
  /** Ray's dashboard port. */
  port: 8265,
  /** Unless a port was asked for, the ports after the default tried when it is taken (Ray's --port-retries). */
  portRetries: 50,
};

/** Where the dashboard listens: `port` 0 picks a free one; none: the default, or the next free one after it. */
export interface DashboardOptions {
  host: string;
  port?: number;
}

/** Where the dashboard of a head started with these options (init's, or `warren start`'s flags) listens; undefined: none. */
export function dashboardOptions(o: { includeDashboard?: boolean; dashboardPort?: number; dashboardHost?: string }): DashboardOptions | undefined {
  if (o.includeDashboard === false) return undefined;
  return { host: o.dashboardHost ?? DASHBOARD_DEFAULTS.host, port: o.dashboardPort };
}

/** What an API route answers: JSON, or plain text with a status (the logs route, until it serves logs). */
export type ApiAnswer = { json: unknown } | { status: number; text: string };
export type ApiRoute = (query: URLSearchParams) => Promise<ApiAnswer>;

export interface Dashboard {
  url: string;
  close(): Promise<void>;
}

const FILES = path.join(PACKAGE_ROOT, "dashboard");
const STATIC: Record<string, [file: string, type: string]> = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/app.js": ["app.js", "text/javascript; charset=utf-8"],
  "/style.css": ["style.css", "text/css; charset=utf-8"],
};

/** Starts the dashboard's server; fails naming the port and how to pick another when it cannot listen. */
export async function serveDashboard(options: DashboardOptions, routes: Record<string, ApiRoute>): Promise<Dashboard> {
  const server = http.createServer((req, res) => void answer(req, res, routes));
  const retries = options.port === undefined ? DASHBOARD_DEFAULTS.portRetries : 0;
  for (let i = 0; ; i++) {
    const port = options.port ?? DASHBOARD_DEFAULTS.port + i;
    try {
      await listen(server, options.host, port);
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EADDRINUSE" && i < retries) continue;
      throw listenError(code, options.host, port, retries);
    }
  }
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${shownHost(options.host)}:${port}`,
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

function listen(server: http.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

function listenError(code: string | undefined, host: string, port: number, retries: number): WarrenError {
  const choose = "choose another with `warren start --head --dashboard-port N` or `init({ dashboardPort: N })`, 0 for a free one";
  if (code === "EADDRINUSE" && retries > 0) {
    return new WarrenError(`the dashboard found no free port on ${host} from ${DASHBOARD_DEFAULTS.port} to ${port}: ${choose}`);
  }
  if (code === "EADDRINUSE") return new WarrenError(`the dashboard cannot listen on ${host}:${port}: the port is in use (another warren head, Ray's dashboard or another server); ${choose}`);
  if (code === "EACCES") return new WarrenError(`the dashboard may not listen on ${host}:${port} (ports below 1024 need root); ${choose}`);
  return new WarrenError(
    `the dashboard cannot listen on ${host}:${port} (${code}): is ${host} an address of this machine? ` +
      "Pass one of its interfaces with `--dashboard-host` or `init({ dashboardHost })`: 127.0.0.1 (the default), or 0.0.0.0 for every one",
  );
}

/** The host in the dashboard's URL: this node's address when it listens on every interface. */
function shownHost(host: string): string {
  if (host === "0.0.0.0" || host === "::") return nodeIp();
  return host.includes(":") ? `[${host}]` : host;
}

async function answer(req: http.IncomingMessage, res: http.ServerResponse, routes: Record<string, ApiRoute>): Promise<void> {
  const url = new URL(req.url ?? "/", "http://dashboard");
  const send = (status: number, type: string, body: string | Buffer) =>
    res.writeHead(status, { "content-type": type, "cache-control": "no-store" }).end(body);
  if (req.method !== "GET") return void send(405, "text/plain", "the warren dashboard answers GET only\n");
  const file = STATIC[url.pathname];
  if (file) {
    return void fs.promises.readFile(path.join(FILES, file[0])).then(
      (body) => send(200, file[1], body),
      (err) => send(500, "text/plain", `the dashboard's file ${path.join(FILES, file[0])} cannot be read (${err.code}): is the package installed whole?\n`),
    );
  }
  const route = routes[url.pathname];
  if (!route) return void send(404, "text/plain", `no such page; the dashboard serves /, and ${Object.keys(routes).join(", ")}\n`);
  try {
    const a = await route(url.searchParams);
    if ("json" in a) send(200, "application/json", JSON.stringify(a.json));
    else send(a.status, "text/plain; charset=utf-8", a.text);
  } catch (err) {
    send(500, "application/json", JSON.stringify({ error: (err as Error).message }));
  }
}
