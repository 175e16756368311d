"""
Local simulators of the external services, for the demo. None of them is the real service.

Each simulator is a fake server of the suite's test kit (``pretix_integrations_core/testing/<name>.py``), started
on a fixed port of 127.0.0.1. A simulator whose module does not exist yet is skipped, so adding one is a line in
:data:`SIMULATORS` (and, if a plugin setting must point at it, a ``configure`` function, see ``demo/bootstrap.py``).

The demo also runs a mail catcher (:class:`MailSink`): pretix's e-mails are saved as ``.eml`` files instead of
being sent.

Run them on their own (without pretix) with ``.venv/bin/python -m demo.simulators``.
"""
import importlib
import importlib.util
import itertools
import os
import socketserver
import threading
import time
from dataclasses import dataclass

HOST = "127.0.0.1"
MAIL_PORT = 1025


@dataclass(frozen=True)
class Simulator:
    key: str
    #: the service it stands for, as shown in the console
    service: str
    #: module of the fake server; a tuple lists alternative names
    module: object
    class_name: str
    port: int
    #: optional "module:function" called as function(organizer, url, token) to point the plugin settings at it
    configure: str = ""
    #: extra keyword arguments for the fake server (e.g. the demo's slow card)
    options: dict = None

    @property
    def modules(self):
        return (self.module,) if isinstance(self.module, str) else tuple(self.module)


_KIT = "pretix_integrations_core.testing."

SIMULATORS = [
    Simulator("apras", "APRAS (Sortir! card check)", _KIT + "apras", "FakeApras", 8081,
              configure="demo.bootstrap:configure_sortir",
              options={"slow_cards": ("5555555555",), "slow_delay": 5.0, "names": {"1000000001": ("Camille", "Martin")}}),
    Simulator("helloasso", "HelloAsso", _KIT + "helloasso", "FakeHelloAsso", 8082,
              configure="demo.bootstrap:configure_helloasso", options={"demo": True}),
    Simulator("calendly", "Calendly", _KIT + "calendly", "FakeCalendly", 8083,
              configure="demo.bootstrap:configure_calendly", options={"demo": True}),
    Simulator("docuseal", "DocuSeal", _KIT + "docuseal", "FakeDocuSeal", 8084, configure="demo.bootstrap:configure_docuseal"),
    Simulator("invoiceninja", "Invoice Ninja", (_KIT + "invoiceninja", _KIT + "invoice_ninja"), "FakeInvoiceNinja", 8085,
              configure="demo.bootstrap:configure_invoiceninja"),
    Simulator("mautic", "Mautic", _KIT + "mautic", "FakeMautic", 8086, configure="demo.bootstrap:configure_mautic"),
    Simulator("billetweb", "Billetweb", _KIT + "billetweb", "FakeBilletweb", 8087, configure="demo.bootstrap:configure_billetweb"),
    Simulator("weezevent", "Weezevent", _KIT + "weezevent", "FakeWeezevent", 8088, configure="demo.bootstrap:configure_weezevent"),
]


@dataclass
class RunningSimulator:
    spec: Simulator
    server: object
    module: object = None
    #: the token the simulator accepts (the module's DEMO_TOKEN), if it has one
    token: str = None

    @property
    def url(self):
        return self.server.url

    @property
    def label(self):
        return getattr(self.server, "label", None) or f"{self.spec.service} simulator"


def _find_module(spec):
    for name in spec.modules:
        try:
            if importlib.util.find_spec(name) is not None:
                return name
        except ImportError:  # the parent package is missing
            continue
    return None


def start_simulators(specs=None, host=HOST, log=print):
    """Start every simulator whose module exists; returns ``(running, skipped)``. Problems are logged, not raised."""
    running, skipped = [], []
    for spec in SIMULATORS if specs is None else specs:
        name = _find_module(spec)
        if name is None:
            log(f"  - {spec.service}: no simulator yet ({spec.modules[0]} does not exist), skipped")
            skipped.append(spec)
            continue
        try:
            module = importlib.import_module(name)
            server = getattr(module, spec.class_name)(host=host, port=spec.port, **(spec.options or {}))
            server.log = log  # what the simulator receives (as its describe() tells it) goes to the console
            server.start()
        except Exception as e:  # a simulator being written must not stop the demo
            log(f"  ! {spec.service}: simulator not started ({type(e).__name__}: {e})")
            skipped.append(spec)
            continue
        running.append(RunningSimulator(spec, server, module=module, token=getattr(module, "DEMO_TOKEN", None)))
    return running, skipped


def stop_simulators(running):
    for sim in running:
        try:
            sim.server.stop()
        except Exception:  # pragma: no cover - stopping is best effort
            pass


class MailSink:
    """A minimal SMTP server that stores every message in ``directory`` as an .eml file and delivers nothing."""

    label = "mail simulator (e-mails are saved as files, never sent)"

    def __init__(self, directory, host=HOST, port=MAIL_PORT):
        self.directory = directory
        self.received = 0
        self._counter = itertools.count(1)
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line):
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self):
                self.reply(f"220 {host} demo mail simulator")
                sender, recipients = None, []
                while True:
                    raw = self.rfile.readline(65537)
                    if not raw:
                        return
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    verb = line[:4].upper()
                    if verb == "EHLO":
                        for ext in ("-" + host, "-8BITMIME", "-SMTPUTF8", " SIZE 52428800"):
                            self.reply("250" + ext)
                    elif verb == "HELO":
                        self.reply(f"250 {host}")
                    elif verb == "MAIL":
                        sender, recipients = line[10:].split(">")[0].strip(" <"), []
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        recipients.append(line[8:].split(">")[0].strip(" <"))
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 End data with <CR><LF>.<CR><LF>")
                        lines = []
                        while True:
                            data = self.rfile.readline()
                            if not data or data in (b".\r\n", b".\n"):
                                break
                            lines.append(data[1:] if data.startswith(b"..") else data)
                        sink.store(sender, recipients, b"".join(lines))
                        self.reply("250 OK: saved, not sent")
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 OK")
                    elif verb == "QUIT":
                        self.reply("221 Bye")
                        return
                    else:
                        self.reply("502 Command not implemented")

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server((host, port), Handler)

    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return f"smtp://{host}:{port}"

    def store(self, sender, recipients, message):
        os.makedirs(self.directory, exist_ok=True)
        name = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}-{next(self._counter):04d}.eml"
        envelope = f"X-Demo-Envelope-From: {sender}\r\nX-Demo-Envelope-To: {', '.join(recipients)}\r\n".encode()
        with open(os.path.join(self.directory, name), "wb") as f:
            f.write(envelope + message)
        self.received += 1

    def start(self):
        threading.Thread(target=self._server.serve_forever, name="MailSink", daemon=True).start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


def main():  # pragma: no cover - manual use
    running, _ = start_simulators()
    for sim in running:
        token = f"  token: {sim.token}" if sim.token else ""
        print(f"SIMULATOR  {sim.label:<45} {sim.url}{token}")
    print("Ctrl-C stops them.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_simulators(running)


if __name__ == "__main__":
    main()
