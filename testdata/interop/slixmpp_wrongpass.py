#!/usr/bin/python3
"""Interop client for Kiez tests: logs in with slixmpp and a wrong
password, and prints FAILED_AUTH for each <failure/> (slixmpp tries the
next offered mechanism by itself) and ALL_FAILED once it has tried them
all, then exits 0; it exits 1 if it logged in or timed out.

usage: slixmpp_wrongpass.py JID HOST PORT
"""
import asyncio
import ssl
import sys

import slixmpp

jid, host, port = sys.argv[1:4]


class Client(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(jid, "not the password")
        self.all_failed = False
        self.add_event_handler("failed_auth", self.failed)
        self.add_event_handler("failed_all_auth", self.failed_all)
        self.add_event_handler("session_start", self.start)

    def failed(self, event):
        print("FAILED_AUTH", flush=True)

    def failed_all(self, event):
        print("ALL_FAILED", flush=True)
        self.all_failed = True
        self.disconnect()

    async def start(self, event):
        print("LOGGED_IN", flush=True)
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
sys.exit(0 if client.all_failed else 1)
