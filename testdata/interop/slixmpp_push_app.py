#!/usr/bin/python3
"""Interop XEP-0357 app server for Kiez tests: logs in with slixmpp as
JID (a full JID: the server publishes to it), prints READY, then, for
each pubsub publish iq it gets, prints one line "NOTIFY <the iq's XML>"
and answers it with a result; it exits 0 after COUNT notifications.

usage: slixmpp_push_app.py JID HOST PORT COUNT   (password in KIEZ_TEST_PASSWORD;
KIEZ_INTEROP_DEBUG=1 logs the XML)
"""
import asyncio
import logging
import os
import ssl
import sys

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

jid, host, port, count = sys.argv[1:5]
password = os.environ["KIEZ_TEST_PASSWORD"]
if os.environ.get("KIEZ_INTEROP_DEBUG"):
    logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(message)s")


class AppServer(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(jid, password)
        self.left = int(count)
        self.add_event_handler("session_start", self.start)
        self.register_handler(Callback(
            "push publish",
            MatchXPath("{jabber:client}iq/{http://jabber.org/protocol/pubsub}pubsub"),
            self.publish))

    async def start(self, event):
        self.send_presence()
        print("READY", flush=True)

    def publish(self, iq):
        if iq["type"] != "set":
            return
        print("NOTIFY", str(iq).replace("\n", " "), flush=True)
        iq.reply(clear=True).send()
        self.left -= 1
        if self.left == 0:
            self.disconnect()


app = AppServer()
app.ssl_context.check_hostname = False
app.ssl_context.verify_mode = ssl.CERT_NONE
app.connect(address=(host, int(port)))
loop = asyncio.get_event_loop()
try:
    loop.run_until_complete(asyncio.wait_for(app.disconnected, 30))
except asyncio.TimeoutError:
    print("TIMEOUT", flush=True)
sys.exit(0 if app.left == 0 else 1)
