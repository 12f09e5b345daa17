// An independent Sparkplug B edge node driven by Eclipse Tahu's JavaScript client, for the hub's
// interop tests. Reads one JSON command per line on stdin, prints one JSON event per line:
//
//   {"op": "connect", "url", "group", "node", "clientId", "hostId"}  → {"event": "connected"}
//   {"op": "nbirth", "metrics": [...]}      {"op": "dbirth", "device", "metrics": [...]}
//   {"op": "ndata", "metrics": [...]}       {"op": "ddata", "device", "metrics": [...]}
//                                           (either with "options": {"compress": true, ...})
//   {"op": "ddeath", "device"}              {"op": "gap", "n": 2}  (skip seq numbers: lost messages)
//   {"op": "stop"}                          (NDEATH, then exit)
//   {"op": "watch", "url", "topic"}         print every Sparkplug payload on `topic` decoded by
//                                           Tahu's sparkplug-payload: {"event": "decoded", ...}
//
// A metric is Tahu's JSON form: {"name", "alias", "type", "value", "timestamp", "isHistorical"}.
// Like a real edge node it answers a host's rebirth request (NCMD Node Control/Rebirth) by
// publishing its last births again ({"event": "rebirth"}), and it honours the primary host's
// STATE: while the host is offline, data is kept, and sent with isHistorical after the births
// once the host is back ({"event": "state", "online": ...}).
"use strict";
const readline = require("readline");
const mqtt = require("mqtt");
const sparkplug = require("sparkplug-client");
const payloads = require("sparkplug-payload").get("spBv1.0");

let client = null;
let nodeBirth = null;
const deviceBirths = new Map();
let hostOnline = true;
const kept = [];

// 64-bit integers decode as Long objects: print them as numbers.
function plain(key, value) {
  return value && typeof value === "object" && typeof value.toNumber === "function"
    ? value.toNumber()
    : value;
}

function emit(event) {
  process.stdout.write(JSON.stringify(event, plain) + "\n");
}

function copy(metrics) {
  return metrics.map((m) => Object.assign({}, m));
}

function births() {
  if (nodeBirth !== null) {
    client.publishNodeBirth({ timestamp: Date.now(), metrics: copy(nodeBirth) });
  }
  for (const [device, metrics] of deviceBirths) {
    client.publishDeviceBirth(device, { timestamp: Date.now(), metrics: copy(metrics) });
  }
}

function data(device, metrics, options) {
  if (!hostOnline) {
    kept.push([device, metrics]);
    return;
  }
  const payload = { timestamp: Date.now(), metrics: copy(metrics) };
  if (device === null) client.publishNodeData(payload, options);
  else client.publishDeviceData(device, payload, options);
}

function connect(cmd) {
  client = sparkplug.newClient({
    serverUrl: cmd.url,
    username: cmd.username || "",
    password: cmd.password || "",
    groupId: cmd.group,
    edgeNode: cmd.node,
    clientId: cmd.clientId,
    publishDeath: true,
    version: "spBv1.0",
  });
  client.on("birth", () => emit({ event: "connected" }));
  client.on("ncmd", (payload) => {
    const asked = (payload.metrics || []).some(
      (m) => m.name === "Node Control/Rebirth" && m.value === true
    );
    if (asked) {
      births();
      emit({ event: "rebirth" });
    }
  });
  client.on("error", (err) => emit({ event: "error", message: String(err) }));
  // STATE is JSON, which the Sparkplug client would try to decode as protobuf: its own session.
  const state = mqtt.connect(cmd.url, { clientId: cmd.clientId + "-state", clean: true });
  state.on("connect", () => state.subscribe(`spBv1.0/STATE/${cmd.hostId}`, { qos: 1 }));
  state.on("message", (topic, message) => {
    let online = false;
    try {
      online = JSON.parse(message.toString()).online === true;
    } catch (e) {
      return;
    }
    const was = hostOnline;
    hostOnline = online;
    emit({ event: "state", online });
    if (online && !was) {
      // The host is back: births first (it may have lost our aliases), then what was kept.
      births();
      for (const [device, metrics] of kept.splice(0)) {
        data(device, metrics.map((m) => Object.assign({}, m, { isHistorical: true })));
      }
    }
  });
}

function watch(cmd) {
  const sub = mqtt.connect(cmd.url, { clientId: "tahu-watch-" + process.pid, clean: true });
  sub.on("connect", () => sub.subscribe(cmd.topic, { qos: 1 }, () => emit({ event: "watching" })));
  sub.on("message", (topic, message) => {
    try {
      const decoded = payloads.decodePayload(message);
      emit({ event: "decoded", topic, payload: decoded });
    } catch (e) {
      emit({ event: "undecodable", topic, message: String(e) });
    }
  });
}

const handlers = {
  connect,
  watch,
  nbirth: (cmd) => {
    nodeBirth = cmd.metrics;
    client.publishNodeBirth({ timestamp: Date.now(), metrics: copy(cmd.metrics) });
  },
  dbirth: (cmd) => {
    deviceBirths.set(cmd.device, cmd.metrics);
    client.publishDeviceBirth(cmd.device, { timestamp: Date.now(), metrics: copy(cmd.metrics) });
  },
  ndata: (cmd) => data(null, cmd.metrics, cmd.options),
  ddata: (cmd) => data(cmd.device, cmd.metrics, cmd.options),
  ddeath: (cmd) => client.publishDeviceDeath(cmd.device, { timestamp: Date.now(), metrics: [] }),
  gap: (cmd) => {
    for (let i = 0; i < cmd.n; i++) client.incrementSeqNum();
  },
  stop: () => {
    client.stop();
    setTimeout(() => process.exit(0), 200);
  },
};

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  handlers[cmd.op](cmd);
  emit({ event: "done", op: cmd.op });
});
