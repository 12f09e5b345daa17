// Bench server for bench/opcua_subscribe.py: N Double variables that all change every PERIOD_MS.
// node-opcua, because the benchmark measures the agent, and a Python server saturates first.
// Usage: NODE_PATH=tests/interop/opcua/node_modules node bench/opcua_bench_server.js PORT N PERIOD_MS [FILE]
// FILE, when given, holds the count of values the server has sampled (written every period).
"use strict";
const fs = require("fs");
const { OPCUAServer, Variant, DataType, MessageSecurityMode, SecurityPolicy } = require("node-opcua");

async function main() {
  const [port, items, periodMs] = process.argv.slice(2, 5).map((x) => parseInt(x, 10));
  const producedFile = process.argv[5];
  let produced = 0;
  const server = new OPCUAServer({
    port,
    hostname: "127.0.0.1",
    securityModes: [MessageSecurityMode.None],
    securityPolicies: [SecurityPolicy.None],
    maxConnections: 4,
    serverCapabilities: { maxMonitoredItemsPerCall: 100000 },
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace;
  const ns = addressSpace.getOwnNamespace();
  const folder = ns.addFolder(addressSpace.rootFolder.objects, { browseName: "Bench", nodeId: "s=Bench" });
  // Values come from a getter that node-opcua calls at each sampling tick: the tick number
  // makes every sample a change, and the server does no work for items nobody monitors.
  const tickOf = () => Math.floor(Date.now() / periodMs);
  for (let i = 0; i < items; i++) {
    ns.addVariable({
      componentOf: folder,
      browseName: `v${i}`,
      nodeId: `s=v${i}`,
      dataType: "Double",
      minimumSamplingInterval: periodMs,
      value: {
        get: () => {
          produced += 1;
          return new Variant({ dataType: DataType.Double, value: tickOf() * 10000 + i });
        },
      },
    });
  }
  await server.start();
  if (producedFile) {
    setInterval(() => fs.writeFileSync(producedFile, String(produced)), periodMs);
  }
  process.stdout.write("ready\n");
  process.on("SIGTERM", async () => {
    await server.shutdown(0);
    process.exit(0);
  });
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});
