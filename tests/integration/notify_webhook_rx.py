#!/usr/bin/env python3
"""notify_webhook_rx.py PORT SECRET OUT [DELAY [ALERTS]]: a webhook receiver for
test_notify_receivers.sh.

Listens on 127.0.0.1:PORT; for every POST checks X-Kaaval-Signature (sha256=<hex
HMAC-SHA256 of the body keyed by SECRET>) and X-Kaaval-Timestamp, appends one line to OUT:
  ok <group_key> <status> <first alert's device> <rule/status/interface/starts_at>...
                                                     (answered 200)
  badsig <what was wrong>                            (answered 401)
The line is written when the request has been read; the answer follows DELAY seconds later
(default 0), so a test can kill the sender while an answer is outstanding.
With ALERTS, every alert of a well-signed notification is also appended to that file as
one JSON line: {"ms": arrival in ms since 1970, "notification": its status, "alert": the
alert as sent}, for tests that read an alert's summary or labels.
"""
import hashlib
import hmac
import http.server
import json
import sys
import time

port, secret, out = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
delay = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
alerts_out = sys.argv[5] if len(sys.argv) > 5 else None


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        sig = self.headers.get("X-Kaaval-Signature", "")
        want = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        ts = self.headers.get("X-Kaaval-Timestamp", "")
        if not hmac.compare_digest(sig, want) or not ts.isdigit():
            line, code = f"badsig got={sig!r} ts={ts!r}", 401
        else:
            n = json.loads(body)
            first = n["alerts"][0]
            dev = first["labels"].get("device", "-")
            # then, per alert: rule/status/interface/start, for tests of the whole pipeline
            # (a flapping alert: its rule name followed by "~flapping")
            rest = " ".join("%s%s/%s/%s/%s" % (a.get("rule", "-"),
                                               "~flapping" if a["labels"].get("flapping") == "true"
                                               else "", a.get("status", "-"),
                                             a["labels"].get("interface", "-"),
                                             a.get("starts_at", "-")) for a in n["alerts"])
            line, code = f"ok {n['group_key']} {n['status']} {dev} {rest}", 200
            if alerts_out:
                ms = int(time.time() * 1000)
                with open(alerts_out, "a") as f:
                    for a in n["alerts"]:
                        f.write(json.dumps({"ms": ms, "notification": n["status"],
                                            "alert": a}) + "\n")
        with open(out, "a") as f:
            f.write(line + "\n")
        time.sleep(delay)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
