#!/usr/bin/env python3
"""A real mail server on loopback for the email channel's tests.

SMTP: aiosmtpd (PyPI) on 127.0.0.1:$SMTP_PORT (STARTTLS offered) and $SMTPS_PORT (TLS) accepts mail for any address at the configured
domains and delivers it into the Maildir of the recipient's local part (without its +tag), adding
Delivered-To. IMAP: Debian's dovecot-imapd on 127.0.0.1:$IMAP_PORT (and IMAPS on $IMAPS_PORT) serves those Maildirs; any user
name logs in with the password "secret" (static passdb), so every test run uses fresh mailboxes.

TLS uses a server certificate for 127.0.0.1 signed by a test CA written to ROOT/ca.pem (tests
trust it).

Usage: mailserver.py ROOT [--smtp-port 2525] [--smtps-port 2465] [--imap-port 1143]
                          [--imaps-port 10993] [--domains shop.test,customer.test]
Runs in the foreground until SIGTERM/SIGINT; prints "ready" once both servers listen.
"""

import argparse
import mailbox
import os
import pwd
import signal
import socket
import ssl
import subprocess
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


def mail_owner():
    """The uid/gid mail is stored as: the 'mail' user when we are root (dovecot refuses root)."""
    if os.geteuid() == 0:
        pw = pwd.getpwnam("mail")
        return pw.pw_uid, pw.pw_gid
    return os.getuid(), os.getgid()


class MaildirHandler:
    def __init__(self, root, domains, uid, gid):
        self.root = root
        self.domains = domains
        self.uid = uid
        self.gid = gid

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local, _, domain = address.lower().rpartition("@")
        if not local or domain not in self.domains:
            return "550 5.7.1 not a local domain"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def _maildir(self, user):
        path = os.path.join(self.root, "mail", user, "Maildir")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        box = mailbox.Maildir(path, create=True)
        for dirpath, _dirs, files in os.walk(os.path.join(self.root, "mail", user)):
            os.chown(dirpath, self.uid, self.gid)
            for f in files:
                os.chown(os.path.join(dirpath, f), self.uid, self.gid)
        return box, path

    async def handle_DATA(self, server, session, envelope):
        for rcpt in envelope.rcpt_tos:
            local = rcpt.lower().rpartition("@")[0].split("+", 1)[0]
            box, path = self._maildir(local)
            data = b"Delivered-To: " + rcpt.encode() + b"\r\n" + envelope.original_content
            key = box.add(mailbox.MaildirMessage(data))
            os.chown(os.path.join(path, "new", key), self.uid, self.gid)
        return "250 2.0.0 delivered"


DOVECOT_CONF = """
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
# Tests log in with a wrong password on purpose: answer at once, no growing penalty.
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
mail_location = maildir:{root}/mail/%n/Maildir
first_valid_uid = {uid}
first_valid_gid = {gid}
{login_users}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  inet_listener http {{
    port = 0
  }}
}}
passdb {{
  driver = static
  args = password=secret
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%n
}}
"""


def wait_port(port, deadline):
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--smtp-port", type=int, default=2525)
    ap.add_argument("--imap-port", type=int, default=1143)
    ap.add_argument("--imaps-port", type=int, default=10993)
    ap.add_argument("--smtps-port", type=int, default=2465)
    ap.add_argument("--domains", default="shop.test,customer.test")
    args = ap.parse_args()

    root = os.path.abspath(args.root)
    for d in ("run", "state", "mail"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    uid, gid = mail_owner()
    os.chown(os.path.join(root, "mail"), uid, gid)
    if os.geteuid() == 0:
        login_users = "default_login_user = dovenull\ndefault_internal_user = dovecot"
    else:
        me = pwd.getpwuid(os.getuid()).pw_name
        login_users = f"default_login_user = {me}\ndefault_internal_user = {me}"
    # A test CA (ROOT/ca.pem, which tests trust) and a server certificate for 127.0.0.1 and
    # localhost signed by it.
    ca, ca_key = os.path.join(root, "ca.pem"), os.path.join(root, "ca.key")
    cert, key = os.path.join(root, "cert.pem"), os.path.join(root, "key.pem")
    if not os.path.exists(cert):
        def openssl(*a):
            subprocess.run(["openssl", *a], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                "-subj", "/CN=omnidesk test CA", "-keyout", ca_key, "-out", ca)
        csr, ext = os.path.join(root, "server.csr"), os.path.join(root, "server.ext")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                "-keyout", key, "-out", csr)
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
        openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                "-days", "3650", "-extfile", ext, "-out", cert)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    conf = os.path.join(root, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(DOVECOT_CONF.format(root=root, uid=uid, gid=gid, imap_port=args.imap_port,
                                    imaps_port=args.imaps_port, login_users=login_users))

    dovecot = subprocess.Popen(["/usr/sbin/dovecot", "-F", "-c", conf])
    handler = MaildirHandler(root, set(args.domains.split(",")), uid, gid)
    # Plain SMTP offering STARTTLS, and SMTP over TLS from the first byte.
    controller = Controller(handler, hostname="127.0.0.1", port=args.smtp_port,
                            data_size_limit=10 * 1024 * 1024, tls_context=tls)
    controller.start()
    tls_controller = Controller(handler, hostname="127.0.0.1", port=args.smtps_port,
                                data_size_limit=10 * 1024 * 1024, ssl_context=tls)
    tls_controller.start()

    def stop(*_):
        controller.stop()
        tls_controller.stop()
        dovecot.terminate()
        dovecot.wait(timeout=10)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not wait_port(args.imap_port, time.time() + 15):
        print("dovecot did not start; see", os.path.join(root, "dovecot.log"), file=sys.stderr)
        stop()
    print("ready", flush=True)
    while True:
        if dovecot.poll() is not None:
            print("dovecot exited", file=sys.stderr)
            controller.stop()
            tls_controller.stop()
            sys.exit(1)
        time.sleep(1)


if __name__ == "__main__":
    main()
