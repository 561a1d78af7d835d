#!/usr/bin/python3
"""Interop component for Kiez tests (XEP-0114), with slixmpp's
ComponentXMPP: attaches as DOMAIN, sends a chat message from
bot@DOMAIN to PEER, answers disco#info queries (its xep_0030 plugin),
replies to PEER's message and exits 0 once the exchange is done.

usage: slixmpp_component.py DOMAIN HOST PORT PEER
The secret is read from the KIEZ_TEST_SECRET environment variable
(KIEZ_INTEROP_DEBUG=1 logs the XML).
"""
import asyncio
import logging
import os
import sys

import slixmpp

domain, host, port, peer = sys.argv[1:5]
secret = os.environ["KIEZ_TEST_SECRET"]
if os.environ.get("KIEZ_INTEROP_DEBUG"):
    logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(message)s")


class Component(slixmpp.ComponentXMPP):
    def __init__(self):
        super().__init__(domain, secret, host, int(port))
        self.register_plugin("xep_0030")
        self.done = False
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.message)

    async def start(self, event):
        print("ATTACHED", flush=True)
        self.send_message(mto=peer, mfrom="bot@" + domain, mbody="hello from a slixmpp component", mtype="chat")

    def message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"] == "hello component":
            print("GOT", msg["from"], "TO", msg["to"], flush=True)
            self.send_message(mto=msg["from"], mfrom=msg["to"], mbody="bye from the component", mtype="chat")
            self.done = True
            self.disconnect()


component = Component()
component.connect()
loop = asyncio.get_event_loop()
try:
    loop.run_until_complete(asyncio.wait_for(component.disconnected, 20))
except asyncio.TimeoutError:
    print("TIMEOUT", flush=True)
sys.exit(0 if component.done else 1)
