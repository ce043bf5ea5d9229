"""An upstream marketing system publishing new leads to Leadflow, in the
formats such systems produce (README, Formats; docs/integration.md):

  json               proto3 JSON, header content-type: application/json
  registry-protobuf  Confluent's ProtobufSerializer (Schema Registry framing)
  registry-json      Confluent's JSONSerializer (Schema Registry framing)
  http               POST /api/v1/events (a JSON array) instead of Kafka

Each event is keyed by its lead id and carries its own event_id, so a
re-run publishes the same ids and Leadflow counts each lead once.

The Schema Registry serializers need a registry to register the schema in;
here it is confluent-kafka's in-memory mock (`mock://`), since Leadflow
reads the framing without asking a registry. Against a real one, pass its
URL with --registry.

usage: upstream_publisher.py --brokers HOST:PORT --topic TOPIC --format F
                             [--leads N] [--run-id ID] [--pool POOL]
                             [--http URL --token TOKEN] [--registry URL]
Prints one JSON line: {"published": N, "format": F}.
"""

import argparse
import json
import time
import urllib.request

import _schema

events_pb2, _ = _schema.load()
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402
from google.protobuf import json_format  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--brokers", default="127.0.0.1:9092")
p.add_argument("--topic", default="leadflow.lead-events")
p.add_argument("--format", required=True,
               choices=["json", "registry-protobuf", "registry-json", "http"])
p.add_argument("--leads", type=int, default=10)
p.add_argument("--run-id", default=str(int(time.time())))
p.add_argument("--pool", default="inbound")
p.add_argument("--http", help="the engine's API base URL, for --format http")
p.add_argument("--token", help="api.ingest_token, for --format http")
p.add_argument("--registry", default="mock://leadflow-example")
args = p.parse_args()


def lead_created(i, now_ms):
    e = events_pb2.LeadEvent(
        event_id=f"up-{args.run_id}-{i:05d}",
        lead_id=f"lead-{args.run_id}-{i:05d}",
        occurred_at_ms=now_ms + i,
        producer="example-upstream",
    )
    c = e.created
    c.channel = ["search", "partner", "event"][i % 3]
    c.campaign = "example"
    c.pool = args.pool
    c.region = "east"
    c.industry = "saas"
    c.company_size = "smb"
    c.acquisition_cost.minor_units = 5_000 + i
    c.acquisition_cost.currency = "CNY"
    return e


now_ms = int(time.time() * 1000)
events = [lead_created(i, now_ms) for i in range(args.leads)]

if args.format == "http":
    body = "[" + ",".join(json_format.MessageToJson(e, indent=None) for e in events) + "]"
    req = urllib.request.Request(
        f"{args.http}/api/v1/events", data=body.encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {args.token}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        answer = json.loads(r.read())
    assert answer["accepted"] + answer["duplicates"] == len(events), answer
    print(json.dumps({"published": len(events), "format": args.format, "answer": {
        k: answer[k] for k in ("accepted", "duplicates", "rejected")}}))
    raise SystemExit(0)

producer = Producer({"bootstrap.servers": args.brokers, "enable.idempotence": True})
headers = []
if args.format == "json":
    def serialize(e):
        return json_format.MessageToJson(e, indent=None).encode()
    headers = [("content-type", b"application/json")]
else:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    registry = SchemaRegistryClient.new_client({"url": args.registry})
    if args.format == "registry-protobuf":
        from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
        serializer = ProtobufSerializer(events_pb2.LeadEvent, registry,
                                        {"use.deprecated.format": False})

        def serialize(e):
            return serializer(e, SerializationContext(args.topic, MessageField.VALUE))
    else:
        from confluent_kafka.schema_registry.json_schema import JSONSerializer
        schema = json.dumps({"$schema": "http://json-schema.org/draft-07/schema#",
                             "title": "LeadEvent", "type": "object",
                             "required": ["eventId", "leadId", "occurredAtMs"]})
        serializer = JSONSerializer(schema, registry,
                                    lambda e, ctx: json_format.MessageToDict(e))

        def serialize(e):
            return serializer(e, SerializationContext(args.topic, MessageField.VALUE))

for e in events:
    producer.produce(args.topic, key=e.lead_id, value=serialize(e), headers=headers)
    producer.poll(0)
left = producer.flush(60)
assert left == 0, f"{left} messages not delivered"
print(json.dumps({"published": len(events), "format": args.format}))
