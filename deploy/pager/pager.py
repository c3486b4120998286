"""The pager of the compose demo: an Alertmanager webhook receiver.

The generated alerts/alertmanager.yml sends pages to
http://127.0.0.1:9095/alerts/oncall and tickets to /alerts/ticket. In compose
this container shares Alertmanager's network namespace
(`network_mode: service:alertmanager`), so that loopback address reaches it
without editing the generated file. GET / shows what arrived, newest first;
every notification is also printed as one JSON line (docker compose logs pager).
Standard library only, so the image is a plain pinned python image.
"""

import html
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_KEPT = 200
_lock = threading.Lock()
_received = []  # (received_at, receiver, alertmanager webhook payload)


class Handler(BaseHTTPRequestHandler):
    server_version = "todo-pager/1"

    def log_message(self, fmt, *args):  # access log off: one JSON line per notification instead
        pass

    def _send(self, status, body, content_type="text/plain; charset=utf-8"):
        data = body.encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        if not self.path.startswith("/alerts/"):
            return self._send(404, "not found\n")
        receiver = self.path[len("/alerts/"):] or "unknown"
        length = int(self.headers.get("content-length") or 0)
        if length > 1 << 20:
            return self._send(413, "payload too large\n")
        try:
            payload = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self._send(400, "body is not JSON\n")
        with _lock:
            _received.insert(0, (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), receiver, payload))
            del _received[MAX_KEPT:]
        for alert in payload.get("alerts", []):
            print(json.dumps({"receiver": receiver, "status": alert.get("status"),
                              "labels": alert.get("labels", {}),
                              "summary": alert.get("annotations", {}).get("summary")}), flush=True)
        return self._send(200, "ok\n")

    def do_GET(self):
        if self.path == "/healthz":
            return self._send(200, "ok\n")
        if self.path == "/api/notifications":
            with _lock:
                items = [{"received_at": t, "receiver": r, "payload": p} for t, r, p in _received]
            return self._send(200, json.dumps(items), "application/json")
        if self.path != "/":
            return self._send(404, "not found\n")
        rows = []
        with _lock:
            snapshot = list(_received)
        for at, receiver, payload in snapshot:
            for alert in payload.get("alerts", []):
                labels = alert.get("labels", {})
                ann = alert.get("annotations", {})
                rows.append("<tr class='{cls}'><td>{at}</td><td>{rcv}</td><td>{st}</td><td>{name}</td>"
                            "<td>{sev}</td><td>{slo}</td><td>{summary}</td></tr>".format(
                                cls="page" if receiver == "oncall" else "ticket",
                                at=html.escape(at), rcv=html.escape(receiver),
                                st=html.escape(str(alert.get("status"))),
                                name=html.escape(labels.get("alertname", "")),
                                sev=html.escape(labels.get("severity", "")),
                                slo=html.escape(labels.get("slo", "")),
                                summary=html.escape(ann.get("summary", ann.get("description", "")))))
        body = ("<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=5>"
                "<title>Pager</title><style>body{font-family:sans-serif}td,th{padding:4px 8px}"
                ".page{background:#fdd}.ticket{background:#ffd}</style>"
                "<h1>Pages and tickets</h1><p>%d notification(s); refreshes every 5 s.</p>"
                "<table><tr><th>received</th><th>receiver</th><th>status</th><th>alert</th>"
                "<th>severity</th><th>slo</th><th>summary</th></tr>%s</table>") % (len(snapshot), "".join(rows))
        return self._send(200, body, "text/html; charset=utf-8")


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9095
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
