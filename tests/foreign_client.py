"""A foreign client: a Python producer and consumer that talks to Leadflow
through Kafka with classes generated from our .proto files (by protoc from
grpcio-tools) and librdkafka's Python client (confluent-kafka).

It publishes LeadCreated events for new leads, then reads the engine's
commands back until every lead has an AssignLead command, checking the
headers against the decoded body. It prints one JSON line with what it saw.

usage: foreign_client.py BROKERS EVENTS_TOPIC COMMANDS_TOPIC RUN_ID LEADS
"""

import json
import os
import subprocess
import sys
import tempfile
import time

brokers, events_topic, commands_topic, run_id, leads = sys.argv[1:6]
leads = int(leads)
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
proto = os.path.join(root, "proto")

# Generate Python classes from our schema, as an outside team would.
out = tempfile.mkdtemp()
subprocess.run(
    [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto}", f"--python_out={out}",
     "leadflow/v1/events.proto", "leadflow/v1/commands.proto"],
    check=True,
)
sys.path.insert(0, out)
from leadflow.v1 import commands_pb2, events_pb2  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
lead_ids = [f"py-{run_id}-{i:03d}" for i in range(leads)]
now_ms = int(time.time() * 1000)
for i, lead_id in enumerate(lead_ids):
    e = events_pb2.LeadEvent(
        event_id=f"py-ev-{run_id}-{i:03d}",
        lead_id=lead_id,
        occurred_at_ms=now_ms + i,
        producer="python-foreign-client",
    )
    c = e.created
    c.channel = "partner"
    c.campaign = "py-campaign"
    c.pool = "smb"
    c.region = "east"
    c.industry = "saas"
    c.company_size = "small"
    c.acquisition_cost.minor_units = 12345
    c.acquisition_cost.currency = "CNY"
    c.contact_fingerprint = f"{i:016x}"
    c.attributes["source"] = "python"
    producer.produce(
        events_topic,
        key=lead_id.encode(),
        value=e.SerializeToString(),
        headers={"content-type": "application/x-protobuf; messageType=leadflow.v1.LeadEvent"},
    )
remaining = producer.flush(30)
assert remaining == 0, f"{remaining} events not delivered"

consumer = Consumer({
    "bootstrap.servers": brokers,
    "group.id": f"py-{run_id}",
    "enable.auto.commit": False,
})
metadata = consumer.list_topics(commands_topic, timeout=10)
partitions = metadata.topics[commands_topic].partitions
consumer.assign([TopicPartition(commands_topic, p, 0) for p in partitions])

wanted = set(lead_ids)
assigned = {}
deadline = time.time() + 90
while wanted - set(assigned) and time.time() < deadline:
    m = consumer.poll(0.5)
    if m is None or m.error():
        continue
    cmd = commands_pb2.LeadCommand()
    cmd.ParseFromString(m.value())
    if cmd.lead_id not in wanted:
        continue
    headers = {k: v.decode() for k, v in (m.headers() or [])}
    assert headers["command_id"] == cmd.command_id, headers
    assert headers["command_type"] == "assign_lead", headers
    assert headers["content-type"].startswith("application/x-protobuf"), headers
    assert m.key().decode() == cmd.lead_id
    assert cmd.WhichOneof("body") == "assign", cmd
    assigned[cmd.lead_id] = {
        "command_id": cmd.command_id,
        "owner_id": cmd.assign.owner_id,
        "causation_event_id": cmd.causation_event_id,
        "rule_id": cmd.rule_id,
        "explanation": cmd.explanation,
    }
consumer.close()
print(json.dumps({"published": len(lead_ids), "assigned": assigned}))
