#!/usr/bin/python3
"""Interop client for Kiez tests: logs in with slixmpp, sends a chat
message to PEER, answers the reply, and exits 0 once the exchange is done.

usage: slixmpp_chat.py JID PASSWORD HOST PORT PEER
The password is read from the KIEZ_TEST_PASSWORD environment variable when
PASSWORD is "-".
"""
import asyncio
import os
import ssl
import sys

import slixmpp

jid, password, host, port, peer = sys.argv[1:6]
if password == "-":
    password = os.environ["KIEZ_TEST_PASSWORD"]


class Client(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(jid, password)
        self.done = False
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.message)
        self.add_event_handler("failed_auth", self.failed)

    async def start(self, event):
        self.send_presence()
        self.send_message(mto=peer, mbody="hello from slixmpp", mtype="chat")

    def failed(self, event):
        # slixmpp goes on with the next mechanism by itself.
        print("FAILED_AUTH", flush=True)

    def message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"] == "hello from go":
            print("GOT", msg["from"], flush=True)
            self.send_message(mto=msg["from"], mbody="bye from slixmpp", mtype="chat")
            self.done = True
            self.disconnect()


client = Client()
client.ssl_context.check_hostname = False
client.ssl_context.verify_mode = ssl.CERT_NONE
client.connect(address=(host, int(port)))
loop = asyncio.get_event_loop()
try:
    loop.run_until_complete(asyncio.wait_for(client.disconnected, 20))
except asyncio.TimeoutError:
    print("TIMEOUT", flush=True)
sys.exit(0 if client.done else 1)
