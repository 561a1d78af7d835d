#!/usr/bin/python3
"""Interop client for Kiez's PEP tests (XEP-0163): logs in with slixmpp,
sends presence with its entity capabilities (which ask for avatar
metadata notifications), publishes an avatar through the xep_0084 plugin
(urn:xmpp:avatar:data, then urn:xmpp:avatar:metadata) and an OMEMO-shaped
bundle through xep_0060 with publish-options access_model=open, fetches
all three back through the plugins and checks what comes back, waits for
the event of its own metadata (the server delivers it to the owner's
resources once it has verified the client's caps), then tells PEER
"pep published <avatar id>" and exits 0. Any failure prints FAIL and exits
1.

usage: slixmpp_pep.py JID HOST PORT PEER DEVICEID IDENTITYKEY AVATAR_B64
       (password in KIEZ_TEST_PASSWORD; KIEZ_INTEROP_DEBUG=1 logs the XML)
"""
import asyncio
import base64
import logging
import os
import ssl
import sys
import traceback

import slixmpp
from slixmpp.xmlstream import ET

jid, host, port, peer, device, identity_key, avatar_b64 = sys.argv[1:8]
password = os.environ["KIEZ_TEST_PASSWORD"]
if os.environ.get("KIEZ_INTEROP_DEBUG"):
    logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(message)s")

AXOLOTL = "eu.siacs.conversations.axolotl"
BUNDLE_NODE = AXOLOTL + ".bundles:" + device
NS_DATA = "urn:xmpp:avatar:data"
NS_META = "urn:xmpp:avatar:metadata"
NS_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"
TIMEOUT = 10


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def bundle():
    """A bundle as Conversations publishes it (XEP-0384 v0.3)."""
    b = ET.Element("{%s}bundle" % AXOLOTL)
    spk = ET.SubElement(b, "{%s}signedPreKeyPublic" % AXOLOTL, signedPreKeyId="1")
    spk.text = base64.b64encode(b"signed pre key").decode()
    ET.SubElement(b, "{%s}signedPreKeySignature" % AXOLOTL).text = base64.b64encode(b"signature").decode()
    ET.SubElement(b, "{%s}identityKey" % AXOLOTL).text = identity_key
    prekeys = ET.SubElement(b, "{%s}prekeys" % AXOLOTL)
    for i in range(1, 4):
        pk = ET.SubElement(prekeys, "{%s}preKeyPublic" % AXOLOTL, preKeyId=str(i))
        pk.text = base64.b64encode(b"pre key %d" % i).decode()
    return b


def only_item(iq, node):
    items = iq["pubsub"]["items"]
    check(items["node"] == node, "items of node %r, want %r" % (items["node"], node))
    got = list(items)
    check(len(got) == 1, "%d items from %s, want 1" % (len(got), node))
    return got[0]


class Client(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(jid, password)
        for p in ("xep_0004", "xep_0030", "xep_0060", "xep_0115", "xep_0163", "xep_0084"):
            self.register_plugin(p)
        self.ok = False
        self.own_event = self.loop.create_future()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("avatar_metadata_publish", self.metadata_event)

    def metadata_event(self, msg):
        item = msg["pubsub_event"]["items"]["item"]
        if not self.own_event.done():
            self.own_event.set_result(item["id"])

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
        self.send_presence()
        await self.get_roster()
        me = self.boundjid.bare
        avatar = base64.b64decode(avatar_b64)
        avatar_id = self["xep_0084"].generate_id(avatar)

        # Publish: data first, then metadata, as XEP-0084 §4.1 orders it.
        res = await self["xep_0084"].publish_avatar(avatar, timeout=TIMEOUT)
        got = res["pubsub"]["publish"]["item"]["id"]
        check(got in ("", avatar_id), "avatar data published as item %r, want %r" % (got, avatar_id))
        # Width and height as strings: slixmpp 1.8.3 puts ints into the
        # attributes unconverted and then fails to serialise the iq.
        await self["xep_0084"].publish_avatar_metadata(
            {"id": avatar_id, "type": "image/png", "bytes": len(avatar), "width": "64", "height": "64"},
            timeout=TIMEOUT)
        options = self["xep_0004"].make_form(ftype="submit")
        options.add_field(var="FORM_TYPE", ftype="hidden", value=NS_PUBLISH_OPTIONS)
        options.add_field(var="pubsub#access_model", value="open")
        await self["xep_0060"].publish(None, BUNDLE_NODE, id="current", payload=bundle(),
                                       options=options, timeout=TIMEOUT)
        print("PUBLISHED", avatar_id, flush=True)

        # Fetch back.
        iq = await self["xep_0084"].retrieve_avatar(me, avatar_id, timeout=TIMEOUT)
        item = only_item(iq, NS_DATA)
        check(item["id"] == avatar_id, "avatar data item %r" % item["id"])
        check(item["avatar_data"]["value"] == avatar, "avatar data differs")

        iq = await self["xep_0060"].get_items(me, NS_META, max_items=1, timeout=TIMEOUT)
        item = only_item(iq, NS_META)
        check(item["id"] == avatar_id, "metadata item %r" % item["id"])
        payload = item["payload"]
        check(payload is not None and payload.tag == "{%s}metadata" % NS_META, "metadata payload %r" % payload)
        info = payload.find("{%s}info" % NS_META)
        check(info is not None, "metadata without <info/>")
        check(info.get("id") == avatar_id and info.get("type") == "image/png"
              and info.get("bytes") == str(len(avatar)) and info.get("width") == "64",
              "metadata info %r" % dict(info.attrib))

        iq = await self["xep_0060"].get_items(me, BUNDLE_NODE, timeout=TIMEOUT)
        item = only_item(iq, BUNDLE_NODE)
        check(item["id"] == "current", "bundle item %r" % item["id"])
        payload = item["payload"]
        check(payload is not None and payload.tag == "{%s}bundle" % AXOLOTL, "bundle payload %r" % payload)
        check(payload.findtext("{%s}identityKey" % AXOLOTL) == identity_key, "identityKey differs")
        keys = payload.findall("{%s}prekeys/{%s}preKeyPublic" % (AXOLOTL, AXOLOTL))
        check([k.get("preKeyId") for k in keys] == ["1", "2", "3"], "prekeys %r" % [k.get("preKeyId") for k in keys])

        # The owner's own resource gets the metadata event: on publish if
        # the server had verified our caps by then, else as the last item
        # once it has.
        got = await asyncio.wait_for(self.own_event, TIMEOUT)
        check(got == avatar_id, "own metadata event for item %r" % got)
        print("FETCHED", flush=True)

        self.send_message(mto=peer, mbody="pep published " + avatar_id, mtype="chat")


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
