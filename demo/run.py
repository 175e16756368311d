"""
``make run``: a local pretix with the suite's plugins, demo data and simulators of the external services.

Steps (each one is skipped when already done, so a second start takes seconds):

1. ``demo-data/pretix.cfg``: SQLite, debug off, ``http://127.0.0.1:8000``, local HTTP allowed, and the suite's
   encryption and hash keys (generated once, then kept);
2. database migrations, only while some are not applied (70-95 s on SQLite, first start only);
3. ``collectstatic`` + ``compress`` when pretix, the installed plugins or their static files/templates changed;
4. demo organiser, admin, event (``demo/bootstrap.py``);
5. simulators on 127.0.0.1 (``demo/simulators.py``), and the organiser's Sortir! settings pointing at APRAS's;
6. ``python -m pretix runperiodic`` every 60 s in the background;
7. pretix (with its static files) on http://127.0.0.1:8000 in the foreground, until Ctrl-C.

Run from the repository root: ``.venv/bin/python -m demo.run``.
"""
import configparser
import hashlib
import importlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "demo-data"
CONFIG = DATA / "pretix.cfg"
PID_FILE = DATA / "demo.pid"
HOST = "127.0.0.1"
PORT = 8000
URL = f"http://{HOST}:{PORT}"
SETTINGS_MODULE = "demo.settings"
PERIODIC_INTERVAL = 60
PACKAGES = ("pretix_integrations_core", "pretix_sortir", "pretix_helloasso_bridge", "pretix_crm_bridge")
STATIC_STAMP = ".pretix-fr-integrations-demo"

CONFIG_HEADER = """\
# pretix configuration of the local demo, written by `make run` (demo/run.py).
# The options of the demo are set again at every start; options you add are kept.
# The [integrations] keys are generated once: the stored secrets can only be read with them.
# `make clean-demo` deletes this folder (database, keys, uploads) to start from scratch.

"""


def say(msg=""):
    print(msg, flush=True)


# -- 1. configuration --------------------------------------------------------------------------------------------

def _managed_options(data_dir):
    from demo.simulators import MAIL_PORT

    return {
        "pretix": {
            "instance_name": "pretix-fr-integrations demo",
            "url": URL,
            "datadir": str(data_dir),
            "allow_http_to_private_networks": "on",
            "currency": "EUR",
            "ecb_rates": "off",  # the demo works offline: no exchange-rate downloads from runperiodic
            "loglevel": "WARNING",  # keeps the terminal readable (requests, warnings and errors)
        },
        "locale": {"default": "fr", "timezone": "Europe/Paris"},
        "database": {"backend": "sqlite3"},
        "django": {"debug": "off"},
        "mail": {"from": "demo@example.org", "host": HOST, "port": str(MAIL_PORT)},
    }


def _generate_encryption_key():
    out = subprocess.run([sys.executable, "-m", "pretix_integrations_core.keygen"], check=True, capture_output=True,
                         text=True, cwd=REPO)
    return out.stdout.strip()


def ensure_config(path=CONFIG, data_dir=DATA):
    """Write the demo's pretix.cfg; the [integrations] keys are generated only if missing. True if it changed."""
    path, data_dir = Path(path), Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    cfg = configparser.RawConfigParser()
    existed = path.exists()
    if existed:
        cfg.read(path, encoding="utf-8")
    before = {s: dict(cfg.items(s)) for s in cfg.sections()}

    for section, options in _managed_options(data_dir).items():
        if not cfg.has_section(section):
            cfg.add_section(section)
        for key, value in options.items():
            cfg.set(section, key, value)
    if not cfg.has_section("integrations"):
        cfg.add_section("integrations")
    if not cfg.get("integrations", "encryption_keys", fallback="").strip():
        cfg.set("integrations", "encryption_keys", _generate_encryption_key())
    if not cfg.get("integrations", "hash_key", fallback="").strip():
        cfg.set("integrations", "hash_key", secrets.token_urlsafe(32))

    if existed and before == {s: dict(cfg.items(s)) for s in cfg.sections()}:
        return False
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(CONFIG_HEADER)
        cfg.write(f)
    os.chmod(tmp, 0o600)  # it holds the keys
    os.replace(tmp, path)
    return True


def django_env():
    env = dict(os.environ)
    env["PRETIX_CONFIG_FILE"] = str(CONFIG)
    env["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def pretix_command(*args, log_name="setup.log", what=""):
    """Run ``python -m pretix <args>`` with the demo's configuration; its output goes to demo-data/logs/."""
    log_path = DATA / "logs" / log_name
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log_path, "ab") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} python -m pretix {' '.join(args)}\n".encode())
        log.flush()
        rc = subprocess.run([sys.executable, "-m", "pretix", *args], env=django_env(), cwd=REPO,
                            stdout=log, stderr=subprocess.STDOUT).returncode
    if rc:
        say(f"\n{what or ' '.join(args)} failed (exit code {rc}). End of {log_path.relative_to(REPO)}:")
        say("\n".join(log_path.read_text(errors="replace").splitlines()[-30:]))
        raise SystemExit(rc)
    return time.monotonic() - t0


# -- 2. and 3. database and static files -------------------------------------------------------------------------

def pending_migrations():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    connection.close()
    return len(plan)


def static_fingerprint():
    """What collectstatic/compress depend on: pretix's version, the installed apps, the suite's static files and templates."""
    from django.conf import settings

    import pretix

    h = hashlib.sha256(f"{pretix.__version__}|{','.join(settings.INSTALLED_APPS)}".encode())
    for pkg in PACKAGES:
        try:
            root = Path(importlib.import_module(pkg).__file__).parent
        except ImportError:
            continue
        for sub in ("static", "templates"):
            for dirpath, dirnames, filenames in sorted(os.walk(root / sub)):
                dirnames.sort()
                for name in sorted(filenames):
                    st = os.stat(os.path.join(dirpath, name))
                    h.update(f"{os.path.relpath(os.path.join(dirpath, name), root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def ensure_static():
    from django.conf import settings

    stamp = Path(settings.STATIC_ROOT) / STATIC_STAMP
    fingerprint = static_fingerprint()
    if stamp.exists() and stamp.read_text().strip() == fingerprint:
        say("  static files: up to date")
        return
    say("  static files: collecting and compressing (pretix, plugins) ...")
    took = pretix_command("collectstatic", "--noinput", what="collectstatic")
    took += pretix_command("compress", "--force", what="compress")
    stamp.write_text(fingerprint + "\n")
    say(f"  static files: done in {took:.0f} s")


# -- 6. periodic tasks -------------------------------------------------------------------------------------------

class PeriodicTasks(threading.Thread):
    """``python -m pretix runperiodic`` every ``interval`` seconds (cron's job in production)."""

    def __init__(self, interval=PERIODIC_INTERVAL, first_delay=10):
        super().__init__(name="runperiodic", daemon=True)
        self.interval = interval
        self.first_delay = first_delay
        self.log_path = DATA / "logs" / "runperiodic.log"
        self.runs = 0
        self._stopping = threading.Event()
        self._proc = None
        self._lock = threading.Lock()

    def run(self):
        delay = self.first_delay
        while not self._stopping.wait(delay):
            t0 = time.monotonic()
            with open(self.log_path, "ab") as log:
                log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} runperiodic\n".encode())
                log.flush()
                with self._lock:
                    if self._stopping.is_set():
                        return
                    # its own session: Ctrl-C goes to the demo, which then stops this process itself
                    self._proc = subprocess.Popen([sys.executable, "-m", "pretix", "runperiodic"], env=django_env(),
                                                  cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
                rc = self._proc.wait()
            took = time.monotonic() - t0
            if self._stopping.is_set():
                return
            self.runs += 1
            if rc:
                say(f"[periodic tasks] runperiodic failed (exit code {rc}), see {self.log_path.relative_to(REPO)}")
            elif self.runs == 1:
                say(f"[periodic tasks] first run done in {took:.0f} s; next runs every {self.interval} s, "
                    f"output in {self.log_path.relative_to(REPO)}")
            delay = max(1.0, self.interval - took)

    def stop(self):
        self._stopping.set()
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.join(timeout=5)


# -- 7. web server -----------------------------------------------------------------------------------------------

def make_server():
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    from demo.wsgi import application

    class RequestHandler(WSGIRequestHandler):
        def log_message(self, format, *args):
            # Static files are many and dull: only their errors are logged.
            if self.path.startswith(("/static/", "/media/")) and len(args) > 1 and str(args[1])[:1] in "23":
                return
            super().log_message(format, *args)

    httpd = ThreadedWSGIServer((HOST, PORT), RequestHandler, ipv6=False)
    httpd.set_app(application)
    return httpd


def check_urls():
    """Load pretix's URLs (plugins included) now: a broken plugin shows up here, not at the first click."""
    from django.urls import get_resolver

    try:
        get_resolver().url_patterns
    except Exception as e:
        say(f"  ! pretix cannot load its pages: {type(e).__name__}: {e}")
        say("    (a plugin is probably broken; the server starts anyway and retries at each request)")


# -- orchestration -----------------------------------------------------------------------------------------------

def _port_in_use(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return True
    return False


def check_ports():
    from demo.simulators import MAIL_PORT, SIMULATORS

    ports = [(PORT, "pretix"), (MAIL_PORT, "mail simulator")] + [(s.port, f"{s.service} simulator") for s in SIMULATORS]
    busy = [f"{port} ({what})" for port, what in ports if _port_in_use(port)]
    if busy:
        running = ""
        if PID_FILE.exists():
            running = f" A demo may already be running (process {PID_FILE.read_text().strip()}): stop it with Ctrl-C."
        raise SystemExit(f"Cannot start the demo: port(s) {', '.join(busy)} already in use on {HOST}.{running}")


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def banner(objs, sims, skipped, mail, startup):
    from demo.bootstrap import ADMIN_PASSWORD

    line = "=" * 100
    rel_data = DATA.relative_to(REPO)
    out = [
        "", line,
        f" pretix-fr-integrations demo is running  (ready in {startup:.0f} s)",
        line,
        f" Organiser back office : {URL}/control/",
        f"     log in with       : {objs.user.email}  /  password: {ADMIN_PASSWORD}  (unless you changed it)",
        f" Demo event (settings) : {URL}/control/event/{objs.organizer.slug}/{objs.event.slug}/",
        f" Plugins of the event  : {URL}/control/event/{objs.organizer.slug}/{objs.event.slug}/settings/plugins",
        f" Ticket shop (buyers)  : {URL}/{objs.organizer.slug}/{objs.event.slug}/",
        "",
        " SIMULATORS - fake versions of the external services, running on this computer only.",
        " Nothing is sent to the real APRAS, HelloAsso, Calendly, DocuSeal, Invoice Ninja, Mautic, Billetweb or Weezevent.",
    ]
    for sim in sims:
        token = f"   (token {sim.token})" if sim.token else ""
        out.append(f"   SIMULATOR {sim.spec.service:<28} {sim.url}{token}")
        cards = getattr(sim.module, "DEMO_VALID_CARDS", None)
        if cards:
            unknown = getattr(sim.module, "DEMO_UNKNOWN_CARD", "")
            out.append(f"             valid test cards: {', '.join(cards)}" + (f"; unknown card: {unknown}" if unknown else ""))
            options = sim.spec.options or {}
            if options.get("slow_cards"):
                out.append(f"             slow card: {', '.join(options['slow_cards'])} (answers after "
                           f"{options.get('slow_delay', 5):g} s, longer than the card check waits: APRAS looks unavailable)")
        if sim.spec.key in ("mautic", "invoiceninja"):
            out.append(f"             the demo event feeds it: mark an order paid, within {PERIODIC_INTERVAL} s the "
                       f"{'contact (if the buyer ticked the consent box)' if sim.spec.key == 'mautic' else 'invoice'} shows in this console and on "
                       "the order page")
    for spec in skipped:
        out.append(f"   (no simulator yet for {spec.service})")
    out += [
        f"   SIMULATOR {'e-mail (SMTP)':<28} {mail.url}   e-mails are saved in {rel_data}/mail/, never sent",
        "",
        f" Background  : pretix periodic tasks (runperiodic) every {PERIODIC_INTERVAL} s, log in {rel_data}/logs/",
        f" Data        : {rel_data}/ (database, pretix.cfg with the encryption keys, uploads, logs)",
        " Reset       : stop, then `make clean-demo` (deletes the demo data), then `make run`",
        " Stop        : Ctrl-C (stops the web server, the simulators and the periodic tasks)",
        line, "",
    ]
    say("\n".join(out))


def main():
    t0 = time.monotonic()
    os.chdir(REPO)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    say(f"pretix-fr-integrations demo: preparing (data in {DATA.relative_to(REPO)}/) ...")
    check_ports()
    if ensure_config():
        say(f"  configuration: wrote {CONFIG.relative_to(REPO)}")
    os.environ["PRETIX_CONFIG_FILE"] = str(CONFIG)
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE

    import django

    django.setup()

    pending = pending_migrations()
    if pending:
        say(f"  database: applying {pending} migrations (first start only, about 1-2 minutes) ...")
        took = pretix_command("migrate", "--noinput", what="migrate")
        say(f"  database: migrated in {took:.0f} s")
    else:
        say("  database: up to date")
    ensure_static()

    from django.db import close_old_connections, connection

    from demo.bootstrap import bootstrap_demo
    from demo.simulators import MailSink, start_simulators, stop_simulators

    objs = bootstrap_demo()
    say("  demo data: " + (f"created {', '.join(objs.created)}" if objs.created else "already there"))

    PID_FILE.write_text(f"{os.getpid()}\n")
    sims, mail, periodic, httpd = [], None, None, None
    try:
        say("  simulators:")
        sims, skipped = start_simulators(log=say)
        for sim in sims:
            say(f"  + {sim.label}: {sim.url}")
            if sim.spec.configure:
                mod_name, func_name = sim.spec.configure.split(":")
                result = getattr(importlib.import_module(mod_name), func_name)(objs.organizer, sim.url, sim.token)
                say(f"    demo organiser's {sim.spec.service} settings point at it")
                if isinstance(result, str) and hasattr(sim.server, "webhook_url"):  # the simulator's webhooks go to pretix
                    sim.server.webhook_url = result
                    say(f"    its webhooks go to {result.split('/webhook/')[0]}/webhook/…")
        mail = MailSink(str(DATA / "mail")).start()
        say(f"  + {mail.label}: {mail.url}")
        close_old_connections()
        connection.close()

        httpd = make_server()
        check_urls()
        periodic = PeriodicTasks()
        periodic.start()
        banner(objs, sims, skipped, mail, time.monotonic() - t0)
        httpd.serve_forever()
    except KeyboardInterrupt:
        say("\nStopping the demo ...")
    finally:
        # A second Ctrl-C (or timeout's forwarded signal) must not cut the clean-up short; it takes a few seconds at most.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if httpd is not None:
            httpd.server_close()
        if periodic is not None:
            periodic.stop()
        stop_simulators(sims)
        if mail is not None:
            mail.stop()
        try:
            if PID_FILE.read_text().strip() == str(os.getpid()):
                PID_FILE.unlink()
        except OSError:
            pass
    say("Demo stopped: web server, simulators and periodic tasks are down. `make run` starts it again.")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        say("\nInterrupted.")
        sys.exit(130)
