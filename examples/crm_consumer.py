"""A CRM carrying out Leadflow's commands, the way docs/integration.md asks:

- reads the commands topic and deduplicates by command_id (delivery is
  at-least-once: a command can arrive twice);
- carries out an AssignLead by publishing `assigned` with its command_id,
  a RecallLead by publishing `recalled` with its command_id and rule_id;
- may decline an AssignLead (`command_declined` with a reason): the engine
  decides the lead again without that rep;
- takes note of a CancelCommand: an AssignLead it has not carried out in
  time was withdrawn, and it must not carry it out any more.

To show what the engine does when a CRM misbehaves, --ignore and --decline
make it drop or decline that share of assignments. The choice is a function
of the command id, so a re-run makes the same choices, and every event it
publishes has an id derived from the command id: a redelivered command
produces the same event, which the engine deduplicates.

usage: crm_consumer.py --brokers HOST:PORT --commands-topic T --events-topic T
                       [--group G] [--ignore 0.1] [--decline 0.05]
                       [--idle-exit-s 10]
Exits after --idle-exit-s seconds without a new command and prints one JSON
line with what it did.
"""

import argparse
import hashlib
import json
import time

import _schema

events_pb2, commands_pb2 = _schema.load()
from confluent_kafka import Consumer, Producer  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--brokers", default="127.0.0.1:9092")
p.add_argument("--commands-topic", default="leadflow.lead-commands")
p.add_argument("--events-topic", default="leadflow.lead-events")
p.add_argument("--group", default="example-crm")
p.add_argument("--ignore", type=float, default=0.0)
p.add_argument("--decline", type=float, default=0.0)
p.add_argument("--idle-exit-s", type=float, default=10.0)
args = p.parse_args()

consumer = Consumer({"bootstrap.servers": args.brokers, "group.id": args.group,
                     "auto.offset.reset": "earliest", "enable.auto.commit": True})
consumer.subscribe([args.commands_topic])
producer = Producer({"bootstrap.servers": args.brokers, "enable.idempotence": True})


def share(command_id):
    """A number in [0, 1) fixed by the command id."""
    return int(hashlib.sha256(command_id.encode()).hexdigest()[:8], 16) / 2**32


def publish(command, fill):
    e = events_pb2.LeadEvent(event_id=f"crm-{command.command_id}", lead_id=command.lead_id,
                             occurred_at_ms=int(time.time() * 1000), producer="example-crm")
    fill(e)
    producer.produce(args.events_topic, key=command.lead_id, value=e.SerializeToString(),
                     headers=[("content-type", b"application/x-protobuf")])
    producer.poll(0)


seen = set()
did = {"assigned": 0, "declined": 0, "ignored": 0, "recalled": 0, "reminded": 0,
       "cancelled": 0, "cancelled_not_ignored": 0, "redelivered": 0, "claims_declined": 0}
ignored = set()
last = time.time()
while time.time() - last < args.idle_exit_s:
    m = consumer.poll(0.2)
    if m is None or m.error():
        continue
    last = time.time()
    c = commands_pb2.LeadCommand()
    c.ParseFromString(m.value())
    if c.command_id in seen:
        did["redelivered"] += 1
        continue
    seen.add(c.command_id)
    kind = c.WhichOneof("body")
    if kind == "assign":
        roll = share(c.command_id)
        if roll < args.ignore:
            did["ignored"] += 1
            ignored.add(c.command_id)
        elif roll < args.ignore + args.decline:
            did["declined"] += 1

            def fill(e, c=c):
                e.command_declined.command_id = c.command_id
                e.command_declined.reason = "rep_unavailable"
            publish(c, fill)
        else:
            did["assigned"] += 1

            def fill(e, c=c):
                e.assigned.owner_id = c.assign.owner_id
                e.assigned.pool = c.assign.pool
                # A granted claim (rule "claim") is carried out as a claim,
                # a manager's assignment (rule "manager") as a manual one.
                e.assigned.method = {"claim": events_pb2.ASSIGNMENT_METHOD_CLAIM,
                                     "manager": events_pb2.ASSIGNMENT_METHOD_MANUAL
                                     }.get(c.rule_id, events_pb2.ASSIGNMENT_METHOD_RULE)
                e.assigned.command_id = c.command_id
            publish(c, fill)
    elif kind == "recall":
        did["recalled"] += 1

        def fill(e, c=c):
            e.recalled.previous_owner_id = c.recall.owner_id
            e.recalled.reason = c.recall.reason
            e.recalled.to_pool = c.recall.to_pool
            e.recalled.command_id = c.command_id
            e.recalled.rule_id = c.rule_id
        publish(c, fill)
    elif kind == "remind":
        did["reminded"] += 1
    elif kind == "move":
        did["moved"] = did.get("moved", 0) + 1

        def fill(e, c=c):
            e.moved.to_pool = c.move.to_pool
            e.moved.command_id = c.command_id
        publish(c, fill)
    elif kind == "update_score":
        # Write the score down (c.update_score.score and its parts; the
        # explanation says why); nothing to publish.
        did["scores"] = did.get("scores", 0) + 1
    elif kind == "decline_claim":
        # Tell the rep why (c.decline_claim.reason); nothing to publish.
        did["claims_declined"] += 1
    elif kind == "cancel":
        did["cancelled"] += 1
        if c.cancel.command_id not in ignored:
            did["cancelled_not_ignored"] += 1
left = producer.flush(30)
assert left == 0, f"{left} events not delivered"
consumer.close()
print(json.dumps(did))
