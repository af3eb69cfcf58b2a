#!/usr/bin/env python3
"""notify_smtp_rx.py PORT CERT KEY OUT: an SMTP server for test_notify_receivers.sh that
requires STARTTLS (with CERT/KEY) and a login (kaaval / mail-pw) before MAIL, on
127.0.0.1:PORT (aiosmtpd). Appends every message to OUT:
  MESSAGE from=<sender> to=<rcpt,...> tls=<True|False> auth=<True|False>
  <the message as received>
  .END
"""
import signal
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"kaaval"
          and auth_data.password == b"mail-pw")
    return AuthResult(success=ok)


class Handler:
    async def handle_DATA(self, server, session, envelope):
        with open(out, "a") as f:
            f.write(f"MESSAGE from={envelope.mail_from} to={','.join(envelope.rcpt_tos)} "
                    f"tls={session.ssl is not None} auth={session.authenticated}\n")
            f.write(envelope.content.decode("utf-8", "replace"))
            f.write("\n.END\n")
        return "250 OK"


ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
c = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=ctx,
               require_starttls=True, authenticator=authenticator, auth_required=True)
c.start()
print("listening", flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
c.stop()
