/**
 * Broker addresses: a URL, or the URLs of one RabbitMQ cluster's nodes as a comma-separated list
 * (what `init({ address: [...] })`, `--address` and WARREN_ADDRESS become), and the one place
 * that takes their passwords out of anything shown.
 */

/**
 * The URLs of an address, in the order they are tried. A comma ends a URL only before the next
 * one's scheme (`x://`), since a password may hold a comma of its own.
 */
export function brokerUrls(address: string): string[] {
  return address.split(/,(?=\s*[a-z][a-z0-9+.-]*:\/\/)/i).map((u) => u.trim()).filter((u) => u !== "");
}

/** Broker addresses (one, or a list, anywhere in a text) without their passwords, for messages and logs. */
export function redactAddress(address: string): string {
  return address.replace(/\/\/([^:@/]*):[^@/]*@/g, "//$1:***@");
}
