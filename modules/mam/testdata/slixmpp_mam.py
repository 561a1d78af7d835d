#!/usr/bin/python3
"""Interop client for Kiez's MAM tests: logs in with slixmpp, reads the
query form and the archive metadata, pages through the archive forwards,
backwards and filtered by PEER with slixmpp's XEP-0313/XEP-0059 plugins,
checks the XEP-0359 stanza-id of a live message against the archive, then
deletes the archive with the XEP-0050 command and checks it is empty.
Exits 0 when every check passed.

usage: slixmpp_mam.py JID HOST PORT PEER COUNT   (password in KIEZ_TEST_PASSWORD)
"""
import asyncio
import os
import ssl
import sys

import slixmpp
from slixmpp import JID

jid, host, port, peer, count = sys.argv[1:6]
count = int(count)
password = os.environ["KIEZ_TEST_PASSWORD"]
DELETE_NODE = "urn:kiez:mam:delete"


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("OK", what, flush=True)


class Client(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(jid, password)
        self.ok = False
        self.live = asyncio.get_event_loop().create_future()
        for p in ("xep_0004", "xep_0030", "xep_0050", "xep_0059", "xep_0297", "xep_0313", "xep_0359"):
            self.register_plugin(p)
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.message)

    def message(self, msg):
        if msg["body"] == "live reply" and not self.live.done():
            self.live.set_result(msg)

    async def bodies(self, **kw):
        out, ids = [], []
        async for m in self["xep_0313"].iterate(jid=self.boundjid.bare, **kw):
            out.append(m["mam_result"]["forwarded"]["stanza"]["body"])
            ids.append(m["mam_result"]["id"])
        return out, ids

    async def start(self, event):
        try:
            await self.run()
            self.ok = True
        except Exception as e:  # report and fail
            print("FAIL", repr(e), flush=True)
        self.disconnect()

    async def run(self):
        self.send_presence()
        me = self.boundjid.bare
        form = await self["xep_0313"].get_fields(jid=me)
        fields = set(form.get_fields().keys())
        check({"with", "start", "end", "before-id", "after-id", "ids"} <= fields, "query form fields %s" % sorted(fields))

        meta = await self["xep_0313"].get_archive_metadata(jid=me)
        check("<start " in str(meta) and "<end " in str(meta), "metadata has start and end")

        want = [str(i) for i in range(count)]
        fwd, ids = await self.bodies(rsm={"max": 20})
        check(fwd == want and len(set(ids)) == count, "forward paging returns %d messages once, in order" % len(fwd))
        back, _ = await self.bodies(rsm={"max": 20}, reverse=True)
        check(back == list(reversed(want)), "backward paging returns %d messages" % len(back))
        withpeer, _ = await self.bodies(with_jid=JID(peer), rsm={"max": 50})
        check(withpeer == want, "filter by peer")

        self.send_message(mto=peer, mbody="live", mtype="chat")
        reply = await asyncio.wait_for(self.live, 10)
        sid = reply["stanza_id"]
        check(sid["by"] == me and sid["id"] != "", "live message carries stanza-id by %s" % sid["by"])
        last, lastids = await self.bodies(rsm={"max": 1}, reverse=True, total=1)
        check(last == ["live reply"] and lastids == [sid["id"]], "stanza-id equals the archive id")

        items = await self["xep_0030"].get_items(jid=self.boundjid.domain, node="http://jabber.org/protocol/commands")
        nodes = [i[1] for i in items["disco_items"]["items"]]
        check(DELETE_NODE in nodes, "command listed")
        res = await self["xep_0050"].send_command(self.boundjid.domain, DELETE_NODE)
        cmd = res["command"]
        check(cmd["status"] == "executing" and "confirm" in cmd["form"].get_fields(), "command asks for confirmation")
        submit = self["xep_0004"].make_form(ftype="submit")
        submit.add_field(var="confirm", ftype="boolean", value=True)
        res = await self["xep_0050"].send_command(self.boundjid.domain, DELETE_NODE, action="complete",
                                                  payload=submit, sessionid=cmd["sessionid"])
        check(res["command"]["status"] == "completed", "command completed")
        left, _ = await self.bodies(rsm={"max": 20})
        check(left == [], "archive empty after deletion")


client = Client()
client.ssl_context.check_hostname = False
client.ssl_context.verify_mode = ssl.CERT_NONE
client.connect(address=(host, int(port)))
loop = asyncio.get_event_loop()
try:
    loop.run_until_complete(asyncio.wait_for(client.disconnected, 30))
except asyncio.TimeoutError:
    print("TIMEOUT", flush=True)
sys.exit(0 if client.ok else 1)
