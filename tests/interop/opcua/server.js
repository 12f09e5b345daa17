// An independent OPC-UA server (node-opcua) with a tiny CNC address space, for interop tests.
// Usage: node server.js PORT PKI_DIR [SPEED_NODE] [SPEED_START]
// Prints one JSON line {"ready": true, ...} when listening, then {"speed": v} for every value
// it serves, so the test can check that what the agent received is what the server served.
"use strict";
const {
  OPCUAServer,
  OPCUACertificateManager,
  Variant,
  DataType,
  StatusCodes,
  DataValue,
  MessageSecurityMode,
  SecurityPolicy,
} = require("node-opcua");

async function main() {
  const port = parseInt(process.argv[2], 10);
  const pkiDir = process.argv[3];
  const speedNode = process.argv[4] || "Spindle.Speed";
  const certificateManager = new OPCUACertificateManager({
    rootFolder: pkiDir,
    // The test is about data, not about the server's trust list.
    automaticallyAcceptUnknownCertificate: true,
  });
  const server = new OPCUAServer({
    port,
    hostname: "127.0.0.1",
    alternateHostname: ["127.0.0.1"],
    serverCertificateManager: certificateManager,
    securityModes: [MessageSecurityMode.None, MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt],
    securityPolicies: [SecurityPolicy.None, SecurityPolicy.Basic256Sha256, SecurityPolicy.Aes128_Sha256_RsaOaep],
    allowAnonymous: true,
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace;
  const ns = addressSpace.getOwnNamespace();
  const machine = ns.addObject({ organizedBy: addressSpace.rootFolder.objects, browseName: "Machine", nodeId: "s=Machine" });
  const spindle = ns.addObject({ componentOf: machine, browseName: "Spindle", nodeId: "s=Spindle" });

  let speed = parseFloat(process.argv[5] || "1000");
  const speedVar = ns.addVariable({
    componentOf: spindle,
    browseName: "Speed",
    nodeId: `s=${speedNode}`,
    dataType: "Double",
    minimumSamplingInterval: 50,
  });
  // An AnalogItem has an EURange, which a percent deadband needs (OPC 10000-8 §5.3.2).
  const feedVar = ns.addAnalogDataItem({
    componentOf: spindle,
    browseName: "Feed",
    nodeId: "s=Spindle.Feed",
    dataType: "Double",
    engineeringUnitsRange: { low: 0, high: 10000 },
    minimumSamplingInterval: 50,
  });
  const publish = () => {
    const now = new Date();
    speedVar.setValueFromSource(new Variant({ dataType: DataType.Double, value: speed }), StatusCodes.Good, now);
    feedVar.setValueFromSource(new Variant({ dataType: DataType.Double, value: speed }), StatusCodes.Good, now);
    process.stdout.write(JSON.stringify({ speed }) + "\n");
  };
  publish();
  setInterval(() => {
    speed += 1.0;
    publish();
  }, 100);

  ns.addVariable({
    componentOf: machine,
    browseName: "State",
    nodeId: "s=Machine.State",
    dataType: "String",
    value: new Variant({ dataType: DataType.String, value: "RUNNING" }),
  });
  ns.addVariable({
    componentOf: machine,
    browseName: "PartCount",
    nodeId: "s=Machine.PartCount",
    dataType: "Int32",
    value: new Variant({ dataType: DataType.Int32, value: 4711 }),
  });
  const temp = ns.addVariable({
    componentOf: spindle,
    browseName: "Temperature",
    nodeId: "s=Spindle.Temperature",
    dataType: "Double",
  });
  temp.setValueFromSource(
    new Variant({ dataType: DataType.Double, value: 61.5 }),
    StatusCodes.UncertainLastUsableValue,
    new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 600)),
  );

  await server.start();
  process.stdout.write(JSON.stringify({ ready: true, port, ns: ns.index }) + "\n");
  const stop = async () => {
    await server.shutdown(0);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});
