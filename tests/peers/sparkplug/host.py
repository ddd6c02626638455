"""A Sparkplug B host for the integration tests: an independent decoder of what the gateway
publishes. It compiles sparkplug_b.proto (next to this file) with grpcio-tools' bundled
protoc into a temp dir, decodes every message under spBv1.0/# with the `protobuf` package,
and prints one JSON line per message on stdout. Lines on stdin drive it:

  online <host_id>       publish STATE {"online":true,"timestamp":now} retained, QoS 1 (and
                         again after every reconnect)
  offline <host_id>      publish STATE {"online":false,"timestamp":now} retained, QoS 1
  rebirth <group> <edge> NCMD Node Control/Rebirth = true
  dcmd <topic> <name> <value>   DCMD with one Double metric by name

usage: host.py <port>
"""
import json
import os
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
from grpc_tools import protoc

here = os.path.dirname(os.path.abspath(__file__))
out = tempfile.mkdtemp(prefix="sparkplug-pb-")
if protoc.main(["protoc", f"-I{here}", f"--python_out={out}", os.path.join(here, "sparkplug_b.proto")]) != 0:
    sys.exit("protoc failed")
sys.path.insert(0, out)
import sparkplug_b_pb2 as pb  # noqa: E402

port = int(sys.argv[1])
lock = threading.Lock()
online = {}  # host id -> whether we announce it online


def emit(obj):
    with lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def value_of(m):
    kind = m.WhichOneof("value")
    return None if kind is None else getattr(m, kind)


def decode(topic, data):
    if topic.startswith("spBv1.0/STATE/"):
        return {"topic": topic, "state": data.decode()}
    p = pb.Payload()
    p.ParseFromString(data)
    metrics = []
    for m in p.metrics:
        props = {}
        if m.HasField("properties"):
            for k, v in zip(m.properties.keys, m.properties.values):
                props[k] = value_of(v)
        metrics.append({
            "name": m.name if m.HasField("name") else None,
            "alias": m.alias if m.HasField("alias") else None,
            "ts": m.timestamp if m.HasField("timestamp") else None,
            "datatype": m.datatype if m.HasField("datatype") else None,
            "historical": m.is_historical if m.HasField("is_historical") else None,
            "is_null": m.is_null if m.HasField("is_null") else None,
            "props": props,
            "value": value_of(m),
        })
    return {
        "topic": topic,
        "seq": p.seq if p.HasField("seq") else None,
        "timestamp": p.timestamp if p.HasField("timestamp") else None,
        "metrics": metrics,
    }


def state(client, host, is_online):
    body = json.dumps({"online": is_online, "timestamp": int(time.time() * 1000)})
    client.publish(f"spBv1.0/STATE/{host}", body, qos=1, retain=True)


def on_connect(client, userdata, flags, reason_code, properties):
    client.subscribe("spBv1.0/#", qos=0)
    for host, is_online in list(online.items()):
        if is_online:
            state(client, host, True)
    emit({"connected": True})


def on_message(client, userdata, msg):
    try:
        emit(decode(msg.topic, msg.payload))
    except Exception as e:  # a payload our decoder cannot read is a test failure
        emit({"topic": msg.topic, "error": str(e)})


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sparkplug-host-{os.getpid()}")
client.on_connect = on_connect
client.on_message = on_message
client.reconnect_delay_set(min_delay=1, max_delay=1)
client.connect("127.0.0.1", port, keepalive=10)
client.loop_start()

for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    if words[0] in ("online", "offline"):
        online[words[1]] = words[0] == "online"
        state(client, words[1], words[0] == "online")
    elif words[0] == "rebirth":
        p = pb.Payload()
        p.timestamp = int(time.time() * 1000)
        m = p.metrics.add()
        m.name = "Node Control/Rebirth"
        m.datatype = pb.Boolean
        m.boolean_value = True
        client.publish(f"spBv1.0/{words[1]}/NCMD/{words[2]}", p.SerializeToString(), qos=0)
    elif words[0] == "dcmd":
        p = pb.Payload()
        p.timestamp = int(time.time() * 1000)
        m = p.metrics.add()
        m.name = words[2]
        m.datatype = pb.Double
        m.double_value = float(words[3])
        client.publish(words[1], p.SerializeToString(), qos=0)
    emit({"done": words[0]})
