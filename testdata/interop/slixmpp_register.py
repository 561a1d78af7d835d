#!/usr/bin/python3
"""Interop client for Kiez's in-band registration tests (XEP-0077), with
slixmpp's xep_0077 plugin.

usage: slixmpp_register.py register JID HOST PORT
         registers JID in-band with the password in KIEZ_TEST_PASSWORD
         (asking for the fields first, as the plugin does), logs in on the
         same stream, changes the password to KIEZ_TEST_NEW_PASSWORD and
         exits 0.
       slixmpp_register.py remove JID HOST PORT
         logs in with KIEZ_TEST_PASSWORD, cancels the registration and
         exits 0 once the server answered with a result.
Any failure prints FAIL and exits 1 (KIEZ_INTEROP_DEBUG=1 logs the XML).
"""
import asyncio
import logging
import os
import ssl
import sys
import traceback

import slixmpp

mode, jid, host, port = sys.argv[1:5]
password = os.environ["KIEZ_TEST_PASSWORD"]
if os.environ.get("KIEZ_INTEROP_DEBUG"):
    logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(message)s")
TIMEOUT = 10


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


class Client(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(jid, password)
        for p in ("xep_0004", "xep_0030", "xep_0066", "xep_0077"):
            self.register_plugin(p)
        self["xep_0077"].create_account = mode == "register"
        # slixmpp 1.8.3 queues every iq sent before the session starts
        # ("NOT SENT"), the registration iqs of its own xep_0077 plugin
        # included; its test harness lifts that gate the same way.
        self._always_send_everything = mode == "register"
        self.ok = False
        self.registered = False
        self.add_event_handler("register", self.register)
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("failed_auth", self.failed)

    def failed(self, event):
        print("FAILED_AUTH", flush=True)

    async def register(self, form):
        try:
            query = form["register"]
            check(query.xml.find("{jabber:iq:register}username") is not None, "no username field: %s" % form)
            resp = self.Iq()
            resp["type"] = "set"
            resp["register"]["username"] = self.boundjid.user
            resp["register"]["password"] = self.password
            await resp.send(timeout=TIMEOUT)
            self.registered = True
            print("REGISTERED", flush=True)
        except Exception as e:
            traceback.print_exc()
            print("FAIL", e, flush=True)
            self.disconnect()

    async def start(self, event):
        try:
            if mode == "register":
                check(self.registered, "logged in without registering")
                await self["xep_0077"].change_password(os.environ["KIEZ_TEST_NEW_PASSWORD"], timeout=TIMEOUT)
                print("CHANGED", flush=True)
            else:
                await self["xep_0077"].cancel_registration(timeout=TIMEOUT)
                print("REMOVED", flush=True)
            self.ok = True
        except Exception as e:
            traceback.print_exc()
            print("FAIL", e, flush=True)
        finally:
            self.disconnect()


client = Client()
client.ssl_context.check_hostname = False
client.ssl_context.verify_mode = ssl.CERT_NONE
client.connect(address=(host, int(port)))
loop = asyncio.get_event_loop()
try:
    loop.run_until_complete(asyncio.wait_for(client.disconnected, float(os.environ.get("KIEZ_INTEROP_TIMEOUT", "30"))))
except asyncio.TimeoutError:
    print("TIMEOUT", flush=True)
sys.exit(0 if client.ok else 1)
