#!/usr/bin/python3
"""Interop client for Kiez's HTTP upload tests (XEP-0363): logs in with
slixmpp, writes SIZE random bytes to the file PATH, uploads it with the
xep_0363 plugin's upload_file (which finds the service among the disco#info
answers of the domain and its disco#items, reads max-file-size from the
service's form, asks for a slot and PUTs the file with aiohttp; the
script makes the disco queries itself, see run), checks that the plugin read
MAXSIZE as the limit, asks for a slot one byte over it and checks the
not-acceptable error with <file-too-large/> and <max-file-size/>, then
prints "SERVICE <jid>", "SHA256 <hex of the bytes>" and "URL <GET URL>"
and exits 0. Any failure prints FAIL and exits 1.

usage: slixmpp_upload.py JID HOST PORT PATH SIZE MAXSIZE
       (password in KIEZ_TEST_PASSWORD; KIEZ_INTEROP_DEBUG=1 logs the XML)
"""
import asyncio
import hashlib
import logging
import os
import ssl
import sys
import traceback

import slixmpp
from slixmpp.exceptions import IqError

jid, host, port, path, size, max_size = sys.argv[1:7]
size, max_size = int(size), int(max_size)
password = os.environ["KIEZ_TEST_PASSWORD"]
if os.environ.get("KIEZ_INTEROP_DEBUG"):
    logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(message)s")

NS = "urn:xmpp:http:upload:0"
TIMEOUT = 10


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


class Client(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(jid, password)
        for p in ("xep_0030", "xep_0128", "xep_0363"):
            self.register_plugin(p)
        self.ok = False
        self.add_event_handler("session_start", self.start)

    async def start(self, event):
        try:
            await self.run()
            self.ok = True
        except Exception as e:
            traceback.print_exc()
            print("FAIL", e, flush=True)
        finally:
            self.disconnect()

    async def run(self):
        data = os.urandom(size)
        with open(path, "wb") as f:
            f.write(data)
        upload = self["xep_0363"]
        disco = self["xep_0030"]
        # The plugin's discovery (find_upload_service) calls
        # get_info_from_domain, which in slixmpp 1.8.3 hands bare
        # coroutines to asyncio.wait, a TypeError since Python 3.11. Make
        # the same queries (disco#items of our domain, disco#info of it
        # and of each item) and put the answers where get_info_from_domain
        # caches them: the plugin then picks the service and reads
        # max-file-size from them itself.
        domain = self.boundjid.domain
        items = await disco.get_items(domain, timeout=TIMEOUT)
        jids = [domain] + [item[0] for item in items["disco_items"]["items"]]
        disco.domain_infos[domain] = [await disco.get_info(j, timeout=TIMEOUT) for j in jids]
        url = await upload.upload_file(path, timeout=TIMEOUT)
        service = upload.upload_service
        print("SERVICE", service, flush=True)
        check(upload.max_file_size == max_size,
              "max-file-size read as %r, want %d" % (upload.max_file_size, max_size))

        # A slot over the limit: the error XEP-0363 §4 describes.
        try:
            await upload.request_slot(service, "too big.bin", max_size + 1, timeout=TIMEOUT)
            raise Failure("a slot over max-file-size was granted")
        except IqError as e:
            err = e.iq["error"]
            check(err["type"] == "modify" and err["condition"] == "not-acceptable",
                  "too large: %s %s" % (err["type"], err["condition"]))
            big = err.xml.find("{%s}file-too-large" % NS)
            check(big is not None, "no <file-too-large/> in %s" % err)
            check(big.findtext("{%s}max-file-size" % NS) == str(max_size),
                  "max-file-size %r" % big.findtext("{%s}max-file-size" % NS))

        print("SHA256", hashlib.sha256(data).hexdigest(), flush=True)
        print("URL", url, flush=True)


client = Client()
client.ssl_context.check_hostname = False
client.ssl_context.verify_mode = ssl.CERT_NONE
client.connect(address=(host, int(port)))
loop = asyncio.get_event_loop()
try:
    loop.run_until_complete(asyncio.wait_for(client.disconnected, 40))
except asyncio.TimeoutError:
    print("TIMEOUT", flush=True)
sys.exit(0 if client.ok else 1)
