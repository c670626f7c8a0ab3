#!/usr/bin/env python3
"""Keep a local map of every product's stock from stock.levels.v1.

A consumer written the way another team would write one, with nothing from
this project but the contract (docs/kafka-contract.md, docs/asyncapi.yaml):
confluent-kafka reading committed records only, each Avro value decoded with
the writer schema its id names in the schema registry (Confluent wire format:
magic byte 0, a 4-byte big-endian schema id, the Avro body). It reads the
topic from the start to its end, applying a product's record only when its
position is newer than the one held (the contract's idempotency rule), then
prints the products asked for as JSON lines, then a summary line.

    python levels_consumer.py --bootstrap 127.0.0.1:9092 \\
        --registry http://127.0.0.1:8081/apis/ccompat/v7 --product SKU-000042
"""
import argparse
import io
import json
import struct
import sys
import urllib.request
import uuid

import fastavro
from confluent_kafka import Consumer, KafkaError, KafkaException


class Registry:
    """Writer schemas by id, fetched once each from the registry."""

    def __init__(self, url):
        self.url = url.rstrip("/")
        self.schemas = {}

    def schema(self, schema_id):
        if schema_id not in self.schemas:
            with urllib.request.urlopen(f"{self.url}/schemas/ids/{schema_id}", timeout=10) as res:
                body = json.load(res)
            self.schemas[schema_id] = fastavro.parse_schema(json.loads(body["schema"]))
        return self.schemas[schema_id]

    def decode(self, value):
        if len(value) < 5 or value[0] != 0:
            raise ValueError("not in the Confluent wire format (magic byte 0, schema id, Avro)")
        (schema_id,) = struct.unpack(">I", value[1:5])
        return fastavro.schemaless_reader(io.BytesIO(value[5:]), self.schema(schema_id))


def position(level):
    return (level["position"]["lsn"], level["position"]["index"])


def read_levels(args):
    """Reads the topic to its end; returns {product_id: level}."""
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group or f"levels-example-{uuid.uuid4()}",
        "isolation.level": "read_committed",  # aborted transactions never show
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,  # the map is rebuilt from the topic each run
        "enable.partition.eof": True,  # tells when a partition is read to its end
    })
    registry = Registry(args.registry)
    levels, at_end, assigned = {}, set(), None

    def on_assign(c, partitions):
        nonlocal assigned
        assigned = {p.partition for p in partitions}

    consumer.subscribe([args.topic], on_assign=on_assign)
    try:
        while assigned is None or at_end != assigned:
            msg = consumer.poll(args.poll_timeout)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    continue
                raise KafkaException(msg.error())
            at_end.discard(msg.partition())
            product = msg.key().decode("utf-8")
            if msg.value() is None:  # a tombstone: the product has no rows left
                levels.pop(product, None)
                continue
            level = registry.decode(msg.value())
            held = levels.get(product)
            if held is None or position(level) > position(held):
                levels[product] = level
    finally:
        consumer.close()
    return levels


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--registry", default="http://127.0.0.1:8081/apis/ccompat/v7")
    p.add_argument("--topic", default="stock.levels.v1")
    p.add_argument("--group", help="consumer group (default: a new one each run)")
    p.add_argument("--product", action="append", default=[], help="print this product (repeatable)")
    p.add_argument("--poll-timeout", type=float, default=1.0)
    args = p.parse_args()

    levels = read_levels(args)
    for product in args.product:
        level = levels.get(product)
        print(json.dumps({"product_id": product, "found": level is not None, "level": level}, default=str))
    print(json.dumps({"products": len(levels), "available": sum(l["available"] for l in levels.values())}))


if __name__ == "__main__":
    sys.exit(main())
