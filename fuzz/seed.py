#!/usr/bin/env python3
"""Writes seed inputs for each fuzz target into seeds/<target>/ from ../tests/data, in the
layout each target's doc comment describes. `cargo fuzz cmin` then keeps the few that
add coverage in corpus/<target>/ (see README.md)."""
import base64, hashlib, json, os, pathlib

here = pathlib.Path(__file__).resolve().parent
data = here.parent / "tests" / "data"
NOW = 1_713_773_729  # the signature target's clock, the vectors' clock


def write(target, content):
    folder = here / "seeds" / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(content).hexdigest()).write_bytes(content)


vectors = json.loads((data / "monite-signature.json").read_text())["vectors"]
bodies = [base64.b64decode(v["body_base64"]) for v in vectors]

catalog = json.loads((data / "catalog.json").read_text())
for object_type, events in catalog["events"].items():
    for event in events:
        bodies.append(json.dumps({
            "id": "f8130c42-6c0f-4b9d-81db-38c08712b8bc",
            "object_type": object_type,
            "action": f"{object_type}.{event}",
            "object": {"id": "587fd280-3b1a-4ad4-8e00-75a8c2cd789a"},
            "entity_id": "c381e88f-7019-4f06-9fbb-3bab8d88348a",
            "webhook_subscription_id": "f3c64af7-4a2f-4ed2-8160-d66b6a8ac4ba",
            "api_version": "2024-01-31",
            "created_at": "2024-03-04T20:06:48.593225+00:00",
            "description": f"{object_type} {event}",
        }, separators=(",", ":")).encode())
for action in catalog.get("legacy_2022_actions", []):
    bodies.append(json.dumps({"object_id": "o", "object_type": "entity", "action": action,
                              "name": "hook"}).encode())
for event in json.loads((data / "monite-api" / "events.json").read_text())["data"]:
    bodies.append(json.dumps(event).encode())
    bodies.append(json.dumps(event, indent=1).encode())
# The shapes the envelope rules single out.
bodies += [
    rb'{"id":"e","object_type":"payable","action":"payable.paid","object":{"id":"o","x":[1,{"id":2}]}}',
    rb' {"object":{"id":"a","id":"b"},"action":"a","object_type":"b","id":null} ',
    rb'{"action":"a","object_type":"b","description":1e400,"x":1e400}',
    rb'{"action":"a","object_type":"b","description":"\ud800","name":"\udc00x"}',
    rb'{"action":"a","object_type":"b","object":{"\ud800":1,"id":"\ud83d\ude00"}}',
    rb'{"action":"a\u0062","object_type":"b","\u0069d":"x","entity_id":7}',
    b'{"action":"a","object_type":"b","x":' + b"[" * 127 + b"]" * 127 + b"}",
]

for vector, body in zip(vectors, bodies):
    flags = 8 if vector["key_format"] == "whsec_base64" else 0
    skew = (vector["now"] - NOW) // 3
    if not -128 <= skew <= 127:
        flags |= 4
        skew = 0
    header = vector["header"].encode()
    write("signature_header", bytes([flags, skew & 0xFF]) + header + b"\n" + body)
    write("signature_header", bytes([flags | 1 | 4, 0]) + header + b"\n" + body)

for body in bodies:
    write("envelope", body)

for number, body in enumerate(bodies):
    method = 0 if number % 7 else number % 9
    write("receiver", bytes([1 | 32 * (number % 2), method]) + b"\n\n\n" + body)
    if number % 5 == 0:
        write("receiver", bytes([8 | 16, 0]) + vectors[0]["header"].encode()
              + b"\n" + str(len(body)).encode() + b"\n\x00application/json\n" + body)
