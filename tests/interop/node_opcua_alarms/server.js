// An independent OPC-UA server (node-opcua) with one OffNormalAlarm, for the agent's Alarms &
// Conditions interop tests (issue #22). The asyncua simulator presents the same layout:
//
//   Objects/<ns>:Press            event notifier, HasNotifier from Server (i=2253)
//     <ns>:GuardOpen              Boolean, anonymous clients may write it, initially false
//     <ns>:GuardOpenAlarm         OffNormalAlarm: source Press, input GuardOpen, normal state false,
//                                 Severity 700, Message "Guard door open" while active
//   <ns> = urn:millstream:test:alarms
//
// Usage: node server.js --port N   (Security None, anonymous; 127.0.0.1 only)
// Prints "ready opc.tcp://127.0.0.1:N" once it accepts connections; exits on SIGTERM.
"use strict";
const { OPCUAServer } = require("node-opcua-server");

const NAMESPACE_URI = "urn:millstream:test:alarms";
const SEVERITY = 700;
const ACTIVE_MESSAGE = "Guard door open";
const INACTIVE_MESSAGE = "Guard door closed";
// Written as numbers so that node-opcua-server stays the only dependency (its own packages define
// them): MessageSecurityMode.None = 1 (OPC 10000-4 §7.20), DataType.Boolean = 1 (OPC 10000-6 §5.1.2).
const SECURITY_MODE_NONE = 1;
const SECURITY_POLICY_NONE = "http://opcfoundation.org/UA/SecurityPolicy#None";
const BOOLEAN = 1;

function parsePort(argv) {
  const at = argv.indexOf("--port");
  const port = at >= 0 ? Number.parseInt(argv[at + 1], 10) : Number.NaN;
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error("usage: node server.js --port N");
  }
  return port;
}

// node-opcua's own OffNormalAlarm logic differs from the contract (and from the asyncua
// simulator): on deactivation it moves the unacknowledged state to a new branch, marks the main
// branch acknowledged and drops Retain; on Acknowledge it drops Retain even while the alarm is
// still active. So the alarm is driven here, on its one branch, as OPC 10000-9 §5.5.2 describes
// Retain: true while active or unacknowledged.
function driveAlarm(alarm) {
  alarm.updateAlarmState = function updateAlarmState(isActive) {
    const branch = this.currentBranch();
    if (isActive === branch.getActiveState()) {
      return;
    }
    branch.setActiveState(isActive);
    if (isActive) {
      branch.setAckedState(false);
    }
    this.raiseNewCondition({
      message: isActive ? ACTIVE_MESSAGE : INACTIVE_MESSAGE,
      severity: SEVERITY,
      retain: isActive || !branch.getAckedState(),
    });
  };
  // Replaces UAAcknowledgeableConditionImpl._acknowledge_branch (called by the standard
  // Acknowledge method after it has checked the EventId); only the Retain line differs.
  alarm._acknowledge_branch = function acknowledgeBranch(eventId, comment, branch) {
    const statusCode = branch._setAckedState(true, eventId, comment);
    if (statusCode.isNotGood()) {
      return statusCode; // BadConditionBranchAlreadyAcked
    }
    branch.setRetain(branch.getActiveState());
    branch.setComment(comment);
    this.raiseNewBranchState(branch);
    this._raiseAuditConditionAcknowledgeEvent(branch);
    this.emit("acknowledged", eventId, comment, branch);
    return statusCode;
  };
}

async function main() {
  const port = parsePort(process.argv);
  const server = new OPCUAServer({
    port,
    hostname: "127.0.0.1",
    alternateHostname: ["127.0.0.1"],
    securityModes: [SECURITY_MODE_NONE],
    securityPolicies: [SECURITY_POLICY_NONE],
    allowAnonymous: true,
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace;
  // Binds ConditionRefresh (i=3875) and Acknowledge (i=9111) on the types; without it a call with
  // those well-known MethodIds answers BadInternalError ("has not been bound").
  addressSpace.installAlarmsAndConditionsService();
  const ns = addressSpace.registerNamespace(NAMESPACE_URI);
  const serverObject = addressSpace.rootFolder.objects.server;

  const press = ns.addObject({
    browseName: "Press",
    nodeId: "s=Press",
    organizedBy: addressSpace.rootFolder.objects,
    // SubscribeToEvents; HasNotifier from Server brings Press's events to monitored items on i=2253.
    eventNotifier: 1,
    notifierOf: serverObject,
  });
  // node-opcua takes only an exact HasEventSource (not its subtype HasNotifier) as proof that a
  // condition source is reachable from Server, so Press gets both references from Server.
  serverObject.addReference({ referenceType: "HasEventSource", isForward: true, nodeId: press.nodeId });
  const guardOpen = ns.addVariable({
    browseName: "GuardOpen",
    nodeId: "s=Press.GuardOpen",
    componentOf: press,
    dataType: "Boolean",
    accessLevel: "CurrentRead | CurrentWrite",
    userAccessLevel: "CurrentRead | CurrentWrite",
    value: { dataType: BOOLEAN, value: false },
  });
  // The NormalState property must point at a variable holding the normal value; this one is
  // referenced by nothing else, so browsing Press shows only the contract's two nodes.
  const normalState = ns.addVariable({
    browseName: "GuardOpenNormalState",
    nodeId: "s=Press.GuardOpenNormalState",
    dataType: "Boolean",
    value: { dataType: BOOLEAN, value: false },
  });
  const alarm = ns.instantiateOffNormalAlarm({
    browseName: "GuardOpenAlarm",
    nodeId: "s=Press.GuardOpenAlarm",
    componentOf: press,
    conditionSource: press,
    inputNode: guardOpen,
    normalState,
    conditionName: "GuardOpenAlarm",
  });
  // node-opcua would report "2:Press" (the qualified browse name); the contract says "Press".
  alarm.setSourceName("Press");
  alarm.currentBranch().setSeverity(SEVERITY);
  driveAlarm(alarm);

  await server.start();
  process.stdout.write(`ready opc.tcp://127.0.0.1:${port}\n`);

  let stopping = false;
  const stop = async () => {
    if (stopping) {
      return;
    }
    stopping = true;
    await server.shutdown(0);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
