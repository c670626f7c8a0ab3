"""Decodes kcat's output the way a consumer outside Go does: keys, headers, and
Avro values in the Confluent wire format, with each value's writer schema fetched
from the schema registry by the id in its frame (Apache Avro's own Python library,
the Debian package python3-avro; no code of this repository).

The Debian build of kcat has no Avro support (it is built without libserdes, and
`kcat -s value=avro` answers "This build of kcat lacks Avro/Schema-Registry
support"), so kcat reads the records and this script does what its `-s avro -r URL`
would do.

    kcat -C ... -f '%p\\t%o\\t%K\\t%k\\t%h\\t%S\\t%s\\n' | python3 confluent_avro.py URL [KEY...]

Prints one JSON object per record: partition, offset, key, headers, schema_id, and
value (the decoded Avro value, null for a tombstone). Values are decoded for the
given keys only (all records when none is given): pure-Python Avro is slow, and a
topic may hold the snapshot of a whole table. Any record it cannot parse or decode
makes it exit non-zero.
"""

import io
import json
import struct
import sys
import urllib.error
import urllib.request

import avro.io
import avro.schema


def field(buf, pos, sep):
    end = buf.index(sep, pos)
    return buf[pos:end], end + 1


def sized(buf, pos, n):
    """n bytes at pos (none for kcat's -1, a null key or value), then the separator."""
    if n < 0:
        return None, pos + 1
    return buf[pos:pos + n], pos + n + 1


def records(buf):
    pos = 0
    while pos < len(buf):
        partition, pos = field(buf, pos, b"\t")
        offset, pos = field(buf, pos, b"\t")
        klen, pos = field(buf, pos, b"\t")
        key, pos = sized(buf, pos, int(klen))
        headers, pos = field(buf, pos, b"\t")
        vlen, pos = field(buf, pos, b"\t")
        value, pos = sized(buf, pos, int(vlen))
        hdrs = {}
        for h in headers.decode().split(","):
            if h:
                k, _, v = h.partition("=")
                hdrs[k] = v
        yield int(partition), int(offset), key, hdrs, value


class Registry:
    def __init__(self, url):
        self.url = url.rstrip("/")
        self.readers = {}

    def reader(self, schema_id):
        if schema_id not in self.readers:
            url = f"{self.url}/schemas/ids/{schema_id}"
            try:
                with urllib.request.urlopen(url, timeout=10) as resp:
                    text = json.load(resp)["schema"]
            except urllib.error.HTTPError as e:
                sys.exit(f"schema id {schema_id} of a value: {url} answered {e.code} {e.read().decode(errors='replace')}")
            self.readers[schema_id] = avro.io.DatumReader(avro.schema.parse(text))
        return self.readers[schema_id]


def decode(registry, value):
    if len(value) < 5 or value[0] != 0:
        raise ValueError("value is not in the Confluent wire format")
    (schema_id,) = struct.unpack(">I", value[1:5])
    reader = registry.reader(schema_id)
    body = io.BytesIO(value[5:])
    decoded = reader.read(avro.io.BinaryDecoder(body))
    if body.tell() != len(value) - 5:
        raise ValueError(f"{len(value) - 5 - body.tell()} bytes left after the Avro value")
    return schema_id, decoded


def main():
    registry = Registry(sys.argv[1])
    keys = {k.encode() for k in sys.argv[2:]}
    out = sys.stdout
    for partition, offset, key, headers, value in records(sys.stdin.buffer.read()):
        rec = {"partition": partition, "offset": offset,
               "key": None if key is None else key.decode(), "headers": headers,
               "schema_id": None, "value": None}
        if value is not None and (not keys or key in keys):
            rec["schema_id"], rec["value"] = decode(registry, value)
        out.write(json.dumps(rec, default=str) + "\n")


if __name__ == "__main__":
    main()
