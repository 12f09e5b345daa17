"""A device publishing to Millstream with paho-mqtt: one telemetry batch, kept until the hub's
receipt names its seq with the digest of the bytes sent (docs/wire.md "Connect a device in 10
minutes"). Settings from the environment:

    MQTT_HOST, MQTT_PORT          the site's broker (default 127.0.0.1:1883)
    MQTT_USERNAME, MQTT_PASSWORD  this device's identity (millstream-hub devices add …)
    SITE, LINE, MACHINE           where it publishes; SRC its publisher id (default: the user name)

Exit 0 once the hub stored the batch, 1 if no receipt came within 30 s.
"""

import hashlib
import json
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt

user = os.environ["MQTT_USERNAME"]
src = os.environ.get("SRC", user)
site, line, machine = os.environ["SITE"], os.environ["LINE"], os.environ["MACHINE"]

# A batch: src and a seq that only ever grows for this src (here: the clock; a real device keeps
# a counter in flash), and readings with epoch-millisecond timestamps.
now = int(time.time() * 1000)
seq = now
batch = {"v": 1, "src": src, "seq": seq, "readings": [
    {"tag": "temp", "ts": now, "v": 21.5},
    {"tag": "running", "ts": now, "v": True},
]}  # fmt: skip
payload = json.dumps(batch, separators=(",", ":")).encode()
# What the receipt must name: the first 128 bits of SHA-256 of the exact bytes sent.
digest = hashlib.sha256(payload).hexdigest()[:32]

stored = threading.Event()


def on_connect(client, userdata, flags, reason, properties):
    if reason.is_failure:
        print(f"broker refused the connection: {reason}", file=sys.stderr)
        os._exit(1)
    # Receipts first, so none is missed; then the batch, at QoS 1.
    client.subscribe(f"ms/v1/receipts/{src}", qos=1)
    client.publish(f"ms/v1/{site}/{line}/{machine}/telemetry", payload, qos=1)


def on_message(client, userdata, message):
    receipt = json.loads(message.payload)
    if [seq, digest] in receipt.get("sha256", []):
        stored.set()  # now, and only now, the device may forget the batch


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
client.username_pw_set(user, os.environ["MQTT_PASSWORD"])
client.on_connect = on_connect
client.on_message = on_message
client.connect(os.environ.get("MQTT_HOST", "127.0.0.1"), int(os.environ.get("MQTT_PORT", "1883")))
client.loop_start()
ok = stored.wait(30)
client.disconnect()
client.loop_stop()
print(f"seq {seq}: " + ("stored by the hub" if ok else "no receipt within 30 s; send it again"))
sys.exit(0 if ok else 1)
