#!/usr/bin/python3
"""Interop clients for Kiez's MUC tests (XEP-0045): two slixmpp sessions,
OWNER and GUEST, use the xep_0045 plugin against the service:

 1. OWNER joins ROOM as "Owner" (join_muc_wait) and must get status 201 and
    110 and the owner affiliation; it fetches the configuration form
    (get_room_config), names the room and makes it persistent and
    non-anonymous, and submits it (set_room_config).
 2. GUEST joins as "Guest" asking for no history; OWNER is among the
    occupants it was told of, and its self-presence has status 100.
 3. OWNER sends a groupchat message; GUEST gets it from ROOM/Owner with a
    <stanza-id by=ROOM/> and an <occupant-id/>.
 4. GUEST leaves and joins again asking for 10 messages of
    history: the history join_muc_wait returns holds the message, from
    ROOM/Owner, with a XEP-0203 delay stamp and the same stanza-id.
 5. OWNER makes GUEST a member (set_affiliation) and reads the member list
    (get_affiliation_list), which holds GUEST.
 6. OWNER destroys the room with an alternate venue; GUEST gets unavailable
    presence with <destroy jid=ALT/>.

Prints OK and exits 0; any failure prints FAIL and exits 1.

usage: slixmpp_muc.py OWNER GUEST HOST PORT ROOM ALT
       (password in KIEZ_TEST_PASSWORD; KIEZ_INTEROP_DEBUG=1 logs the XML)
"""
import asyncio
import logging
import os
import ssl
import sys
import traceback

import slixmpp

owner_jid, guest_jid, host, port, room, alt = sys.argv[1:7]
password = os.environ["KIEZ_TEST_PASSWORD"]
if os.environ.get("KIEZ_INTEROP_DEBUG"):
    logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(message)s")

NS_USER = "http://jabber.org/protocol/muc#user"
TIMEOUT = 10


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def codes(pres):
    x = pres.xml.find("{%s}x" % NS_USER)
    if x is None:
        return set()
    return {s.get("code") for s in x.findall("{%s}status" % NS_USER)}


def client(jid):
    c = slixmpp.ClientXMPP(jid, password)
    for p in ("xep_0030", "xep_0004", "xep_0045", "xep_0082", "xep_0203"):
        c.register_plugin(p)
    c.started = asyncio.get_event_loop().create_future()
    c.add_event_handler("session_start", lambda e: (c.send_presence(), c.started.set_result(True)))
    c.ssl_context.check_hostname = False
    c.ssl_context.verify_mode = ssl.CERT_NONE
    c.connect(address=(host, int(port)))
    return c


async def run(owner, guest):
    await asyncio.wait_for(owner.started, TIMEOUT)
    await asyncio.wait_for(guest.started, TIMEOUT)
    muc_o, muc_g = owner["xep_0045"], guest["xep_0045"]

    pres, _, _, _ = await muc_o.join_muc_wait(room, "Owner", timeout=TIMEOUT)
    check({"110", "201"} <= codes(pres), "creation codes %s" % codes(pres))
    check(pres["muc"]["affiliation"] == "owner", "creator is %s" % pres["muc"]["affiliation"])
    form = await muc_o.get_room_config(room, timeout=TIMEOUT)
    fields = form.get_fields()
    for var in ("muc#roomconfig_roomname", "muc#roomconfig_persistentroom", "muc#roomconfig_whois"):
        check(var in fields, "no %s in the form" % var)
    form.set_values({
        "muc#roomconfig_roomname": "Interop",
        "muc#roomconfig_persistentroom": True,
        "muc#roomconfig_whois": "anyone",
    })
    await muc_o.set_room_config(room, form, timeout=TIMEOUT)

    pres, subject, occupants, _ = await muc_g.join_muc_wait(room, "Guest", maxstanzas=0, timeout=TIMEOUT)
    check("110" in codes(pres) and "100" in codes(pres), "guest codes %s" % codes(pres))
    check(any(p["from"].resource == "Owner" for p in occupants), "owner not among the occupants")

    got = asyncio.get_event_loop().create_future()
    guest.add_event_handler("groupchat_message",
                            lambda m: got.done() or m["body"] != "hello from slixmpp" or got.set_result(m))
    owner.send_message(mto=room, mbody="hello from slixmpp", mtype="groupchat")
    msg = await asyncio.wait_for(got, TIMEOUT)
    check(str(msg["from"]) == room + "/Owner", "message from %s" % msg["from"])
    sid = msg.xml.find("{urn:xmpp:sid:0}stanza-id")
    check(sid is not None and sid.get("by") == room, "stanza-id %r" % sid)
    check(msg.xml.find("{urn:xmpp:occupant-id:0}occupant-id") is not None, "no occupant-id")

    left = asyncio.get_event_loop().create_future()

    def on_left(p):
        if p["type"] == "unavailable" and str(p["from"]) == room + "/Guest" and not left.done():
            left.set_result(p)
    guest.add_event_handler("groupchat_presence", on_left)
    # As leave_muc does, but the plugin keeps the room, so that the
    # unavailable self-presence is a groupchat_presence event.
    guest.send_presence(pto=room + "/Guest", ptype="unavailable")
    await asyncio.wait_for(left, TIMEOUT)
    guest.del_event_handler("groupchat_presence", on_left)
    _, _, _, history = await muc_g.join_muc_wait(room, "Guest", maxstanzas=10, timeout=TIMEOUT)
    old = [m for m in history if m["body"] == "hello from slixmpp"]
    check(len(old) == 1, "history %s" % [m["body"] for m in history])
    check(str(old[0]["from"]) == room + "/Owner", "history message from %s" % old[0]["from"])
    check(old[0]["delay"]["stamp"] is not None, "history message without a delay stamp")
    hsid = old[0].xml.find("{urn:xmpp:sid:0}stanza-id")
    check(hsid is not None and hsid.get("id") == sid.get("id"), "history stanza-id %r, live %r" % (hsid, sid.get("id")))

    await muc_o.set_affiliation(room, "member", jid=slixmpp.JID(guest_jid), timeout=TIMEOUT)
    members = await muc_o.get_affiliation_list(room, "member", timeout=TIMEOUT)
    check(any(str(j) == guest_jid for j in members), "member list %s" % members)

    gone = asyncio.get_event_loop().create_future()

    def on_presence(p):
        if p["type"] == "unavailable" and str(p["from"]) == room + "/Guest" and not gone.done():
            gone.set_result(p)
    guest.add_event_handler("groupchat_presence", on_presence)
    await muc_o.destroy(room, reason="moving", altroom=slixmpp.JID(alt), timeout=TIMEOUT)
    p = await asyncio.wait_for(gone, TIMEOUT)
    d = p.xml.find("{%s}x/{%s}destroy" % (NS_USER, NS_USER))
    check(d is not None and d.get("jid") == alt, "destroy %r" % d)


async def main():
    owner, guest = client(owner_jid), client(guest_jid)
    ok = False
    try:
        await run(owner, guest)
        ok = True
        print("OK", flush=True)
    except Exception as e:
        traceback.print_exc()
        print("FAIL", e, flush=True)
    finally:
        owner.disconnect()
        guest.disconnect()
    return ok


loop = asyncio.get_event_loop()
sys.exit(0 if loop.run_until_complete(main()) else 1)
