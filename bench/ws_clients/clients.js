// Load-generating WebSocket clients for bench/ws_fanout.py, in their own process so their CPU is
// not the hub's. Node's `ws`, because a Python client costs several times the CPU per message
// and the bench machine has two cores. Per message the work is one JSON.parse and, for tag t0,
// one subtraction: receive time minus the publish time the reading carries as its value (ns).
//
//   node bench/ws_clients/clients.js URL COUNT MACHINES OUT [deflate|plain]
//
// URL includes ?token=; MACHINES is comma-separated (client i subscribes to machine i mod n).
// Prints "ready N" once every client is subscribed; on a "stop" line on stdin it writes
// {"ts": [...], "lat": [...], ...} to OUT (reading ts in ms, latency in ms) and exits.
"use strict";
const fs = require("fs");
const readline = require("readline");
const { performance } = require("perf_hooks");
const WebSocket = require("ws");

const [url, countArg, machinesArg, out, mode = "deflate"] = process.argv.slice(2);
const count = parseInt(countArg, 10);
const machines = machinesArg.split(",");
// Browsers always offer permessage-deflate; the hub decides whether to accept it.
const options = { perMessageDeflate: mode === "deflate", maxPayload: 0 };
const nowMs = () => performance.timeOrigin + performance.now();

const ts = [];
const lat = [];
const stats = { messages: 0, readings_messages: 0, heartbeats: 0, errors: 0, closed: 0, deflate: 0 };
const sockets = [];
let ready = 0;

function open(i) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    let subscribed = false;
    ws.on("open", () => {
      if (ws.extensions.includes("permessage-deflate")) stats.deflate++;
      ws.send(JSON.stringify({ type: "subscribe", machines: [machines[i % machines.length]] }));
    });
    ws.on("message", (data) => {
      const now = nowMs();
      stats.messages++;
      const msg = JSON.parse(data);
      if (msg.type === "readings") {
        stats.readings_messages++;
        for (const r of msg.readings) {
          if (r.tag === "t0") {
            ts.push(r.ts);
            lat.push(now - r.v / 1e6);
          }
        }
      } else if (msg.type === "subscribed" && !subscribed) {
        subscribed = true;
        resolve();
      } else if (msg.type === "heartbeat") {
        stats.heartbeats++;
      } else if (msg.type === "error") {
        stats.errors++;
      }
    });
    ws.on("error", (err) => {
      stats.errors++;
      if (!subscribed) reject(err);
    });
    ws.on("close", () => {
      stats.closed++;
    });
    sockets.push(ws);
  });
}

async function main() {
  // A few connections at a time: a thousand simultaneous handshakes only measure the backlog.
  const batch = 50;
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i);
    await Promise.all(Array.from({ length: n }, (_, k) => open(i + k)));
    ready += n;
  }
  process.stdout.write(`ready ${ready}\n`);
  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    if (line.trim() !== "stop") return;
    const closedBeforeStop = stats.closed;
    fs.writeFileSync(out, JSON.stringify({ ts, lat, ...stats, closed: closedBeforeStop }));
    for (const ws of sockets) ws.terminate();
    process.exit(0);
  });
}

main().catch((err) => {
  process.stderr.write(`clients failed: ${err.stack || err}\n`);
  process.exit(1);
});
