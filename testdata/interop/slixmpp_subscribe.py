#!/usr/bin/python3
"""Interop client for Kiez tests: logs in with slixmpp, asks PEER for a
presence subscription (slixmpp approves PEER's request back by itself),
waits until the subscription is mutual, sends a chat message, answers
PEER's reply, and exits 0 once the exchange is done.

usage: slixmpp_subscribe.py JID HOST PORT PEER   (password in KIEZ_TEST_PASSWORD)
"""
import asyncio
import os
import ssl
import sys

import slixmpp

jid, host, port, peer = sys.argv[1:5]
password = os.environ["KIEZ_TEST_PASSWORD"]


class Client(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(jid, password)
        self.done = False
        self.said_hello = False
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("roster_update", self.roster_update)
        self.add_event_handler("message", self.message)

    async def start(self, event):
        self.send_presence()
        await self.get_roster()
        self.send_presence(pto=peer, ptype="subscribe")

    def roster_update(self, event):
        sub = self.client_roster[peer]["subscription"]
        print("SUB", sub, flush=True)
        if sub == "both" and not self.said_hello:
            self.said_hello = True
            self.send_message(mto=peer, mbody="subscribed both ways", mtype="chat")

    def message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"] == "hello from go":
            self.send_message(mto=msg["from"], mbody="bye from slixmpp", mtype="chat")
            self.done = True
            self.disconnect()


client = Client()
client.ssl_context.check_hostname = False
client.ssl_context.verify_mode = ssl.CERT_NONE
client.connect(address=(host, int(port)))
loop = asyncio.get_event_loop()
try:
    loop.run_until_complete(asyncio.wait_for(client.disconnected, 25))
except asyncio.TimeoutError:
    print("TIMEOUT", flush=True)
sys.exit(0 if client.done else 1)
