// The bare-socket limit's server: one process holding 256 MiB (its first argument, in bytes)
// that writes all of it to each connection on 127.0.0.1 and closes it. Nothing else: no framing,
// no store. Says its port over IPC once listening, and exits when its parent goes.
"use strict";
const net = require("node:net");

const size = Number(process.argv[2]);
const bytes = Buffer.alloc(size, 7);
const server = net.createServer((sock) => {
  sock.setNoDelay(true);
  sock.on("error", () => sock.destroy());
  sock.end(bytes);
});
server.listen(0, "127.0.0.1", () => process.send(server.address().port));
process.on("disconnect", () => process.exit(0));
