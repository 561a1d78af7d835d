-- One row per roster that was ever written: its version is gen.n
-- (rosterver); versions below floor are unknown (tombstones dropped).
CREATE TABLE roster_versions (
	jid   text PRIMARY KEY,
	gen   bigint NOT NULL,
	n     bigint NOT NULL,
	floor bigint NOT NULL DEFAULT 0
);

CREATE TABLE roster_items (
	jid          text NOT NULL,
	contact      text NOT NULL,
	name         text NOT NULL,
	groups       text[],
	subscription text NOT NULL,
	ask          boolean NOT NULL,
	approved     boolean NOT NULL,
	pending_in   boolean NOT NULL,
	hidden       boolean NOT NULL,
	ver          bigint NOT NULL,
	PRIMARY KEY (jid, contact)
);
CREATE INDEX roster_items_ver ON roster_items (jid, ver);

CREATE TABLE roster_tombstones (
	jid     text NOT NULL,
	contact text NOT NULL,
	ver     bigint NOT NULL,
	PRIMARY KEY (jid, contact)
);
CREATE INDEX roster_tombstones_ver ON roster_tombstones (jid, ver);
