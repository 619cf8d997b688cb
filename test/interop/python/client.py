"""Runs the interop plan (test/interop/plan.ts) with Python grpcio and prints the report.

Usage: client.py GEN_DIR PLAN.json  (GEN_DIR holds the stubs grpcio-tools generated from proto/
and third_party/proto). The report is one JSON document on stdout; messages are canonical proto
JSON (json_format), errors as grpcio and grpcio-status see them.
"""
import base64
import json
import re
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from google.protobuf import symbol_database  # noqa: E402
from grpc_status import rpc_status  # noqa: E402

from buf.validate import validate_pb2  # noqa: E402,F401  (registers buf.validate.Violations)
from im.v1 import conversation_pb2, conversation_pb2_grpc, gateway_pb2, gateway_pb2_grpc, message_pb2  # noqa: E402,F401

SERVICES = {
    "im.v1.GatewayService": (gateway_pb2, gateway_pb2_grpc.GatewayServiceStub),
    "im.v1.ConversationService": (conversation_pb2, conversation_pb2_grpc.ConversationServiceStub),
}


def to_json(msg):
    return json_format.MessageToDict(msg)


def flat(metadata):
    if metadata is None:
        return None
    out = {}
    for key, value in metadata:
        out[key] = base64.b64encode(value).decode() if isinstance(value, bytes) else value
    return out


def reported(call):
    """A finished call (or RpcError) as the plan reports an error."""
    code = call.code().value[0]
    details_bin = None
    for key, value in call.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            details_bin = base64.b64encode(value).decode()
    status = rpc_status.from_call(call) if code != 0 else None
    return {
        "code": code,
        "message": call.details() or "",
        "status": to_json(status) if status is not None else None,
        "detailsBin": details_bin,
    }


class Runner:
    def __init__(self, plan):
        self.plan = plan
        self.channel = grpc.insecure_channel(plan["target"])
        self.stubs = {name: (module, stub(self.channel)) for name, (module, stub) in SERVICES.items()}
        self.saved = {}
        self.steps = []
        self.timeout = plan["stepTimeoutMs"] / 1000

    def metadata(self, user):
        return () if user is None else (("authorization", "Bearer " + self.plan["tokens"][user]),)

    def method(self, service, name):
        module, _ = self.stubs[service]
        desc = module.DESCRIPTOR.services_by_name[service.split(".")[-1]].methods_by_name[name]
        db = symbol_database.Default()
        return db.GetSymbol(desc.input_type.full_name), db.GetSymbol(desc.output_type.full_name)

    def unary(self, step):
        _, stub = self.stubs[step["service"]]
        request_type, response_type = self.method(step["service"], step["method"])
        md = self.metadata(step.get("as"))
        if "raw" in step:
            call = self.channel.unary_unary(
                "/%s/%s" % (step["service"], step["method"]),
                request_serializer=lambda raw: raw,
                response_deserializer=response_type.FromString,
            )
            request = base64.b64decode(step["raw"])
        else:
            text = re.sub(r"\$\{(\w+)\}", lambda m: self.saved.get(m.group(1), ""), json.dumps(step.get("request", {})))
            request = json_format.Parse(text, request_type())
            call = getattr(stub, step["method"])
        result = {"name": step["name"]}
        try:
            response, done = call.with_call(request, metadata=md, timeout=self.timeout)
            result["ok"] = to_json(response)
            result["headers"] = flat(done.initial_metadata())
        except grpc.RpcError as e:
            result["error"] = reported(e)
            result["headers"] = flat(e.initial_metadata())
            result["trailers"] = flat(e.trailing_metadata())
        for name, path in (step.get("capture") or {}).items():
            value = result.get("ok")
            for key in path.split("."):
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, str):
                self.saved[name] = value
        self.steps.append(result)

    def stream(self, step):
        _, stub = self.stubs["im.v1.GatewayService"]
        md = self.metadata(step["as"])
        frames = []
        lock = threading.Condition()
        outgoing = []
        closed = [False]

        def requests():
            while True:
                with lock:
                    while not outgoing and not closed[0]:
                        lock.wait()
                    if outgoing:
                        item = outgoing.pop(0)
                    else:
                        return
                yield item

        if step["kind"] == "connect":
            call = stub.Connect(requests(), metadata=md)
        else:
            call = stub.Subscribe(gateway_pb2.SubscribeRequest(), metadata=md)
        ended = threading.Event()

        def read():
            try:
                for frame in call:
                    with lock:
                        frames.append(to_json(frame))
                        lock.notify_all()
            except grpc.RpcError:
                pass
            ended.set()
            with lock:
                lock.notify_all()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()

        def wait_until(what, done):
            deadline = time.monotonic() + self.timeout
            with lock:
                while not done():
                    if ended.is_set():
                        raise RuntimeError("%s: the stream ended while waiting for %s" % (step["name"], what))
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise RuntimeError("%s: no %s within %ss; frames: %s" % (step["name"], what, self.timeout, frames))
                    lock.wait(left)

        for action in step["actions"]:
            if "write" in action:
                request_id = action["write"]["requestId"]
                frame = json_format.Parse(json.dumps(action["write"]), gateway_pb2.ConnectRequest())
                with lock:
                    outgoing.append(frame)
                    lock.notify_all()
                wait_until("answer to request " + request_id, lambda: any(f.get("requestId") == request_id for f in frames))
            elif "unary" in action:
                self.unary(action["unary"])
            elif "awaitPushes" in action:
                n = action["awaitPushes"]
                wait_until("%d pushes" % n, lambda: sum(1 for f in frames if "requestId" not in f) >= n)
            elif "awaitFrames" in action:
                n = action["awaitFrames"]
                wait_until("%d frames" % n, lambda: len(frames) >= n)
            elif "close" in action:
                with lock:
                    closed[0] = True
                    lock.notify_all()
            elif "cancel" in action:
                call.cancel()
        if not ended.wait(self.timeout):
            raise RuntimeError("%s: did not end within %ss" % (step["name"], self.timeout))
        reader.join(self.timeout)
        end = reported(call)
        self.steps.append({"name": step["name"], "frames": frames, "end": end, "headers": flat(call.initial_metadata())})

    def run(self):
        for step in self.plan["steps"]:
            if step["kind"] == "unary":
                self.unary(step)
            else:
                self.stream(step)
        self.channel.close()
        return {"stack": "python-grpcio %s" % grpc.__version__, "steps": self.steps}


def main():
    with open(sys.argv[2]) as f:
        plan = json.load(f)
    json.dump(Runner(plan).run(), sys.stdout)


if __name__ == "__main__":
    main()
