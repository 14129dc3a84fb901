"""A jetsaga participant in Python: the hotels service (nats-py, JetStream)."""
import asyncio, json, os

import nats

PREFIX = os.environ.get("SAGA_PREFIX", "saga")
replies = {}  # idempotency key -> recorded ok reply; keep it in your database, in the effect's transaction


def handle(cmd):
    if cmd["kind"] == "compensation":  # undo; for an action never seen (unknown effect): a no-op, still ok
        return {"status": "ok", "output": {"undone": cmd["idempotency_key"].rsplit(":", 1)[0] + ":action" in replies}}
    if cmd["payload"].get("input", {}).get("city") == "Atlantis":
        return {"status": "failed", "error": "no hotel in Atlantis"}  # no effect: not recorded
    return {"status": "ok", "output": {"room": 100 + len(replies)}}


async def main():
    nc = await nats.connect(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    js = nc.jetstream()
    sub = await js.pull_subscribe(f"{PREFIX}.cmd.hotels.>", durable="hotels")
    while True:
        try:
            msgs = await sub.fetch(10, timeout=5)
        except nats.errors.TimeoutError:
            continue
        for msg in msgs:
            cmd = json.loads(msg.data)
            key = cmd["idempotency_key"]
            result = replies.get(key) or handle(cmd)
            if result["status"] == "ok":
                replies[key] = result
            reply = {k: cmd[k] for k in ("saga_id", "step", "kind", "attempt")} | result  # answers this attempt
            headers = {"traceparent": msg.headers["traceparent"]} if "traceparent" in (msg.headers or {}) else None
            await js.publish(f"{PREFIX}.reply.hotels", json.dumps(reply).encode(), headers=headers)
            await msg.ack()  # only after the reply is stored: a crash before it means a redelivery


asyncio.run(main())
