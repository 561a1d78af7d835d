CREATE TABLE muc_rooms (
	jid         text COLLATE "C" PRIMARY KEY,
	service     text COLLATE "C" NOT NULL,
	config      bytea NOT NULL,
	created     date NOT NULL,
	last_active date NOT NULL
);
CREATE INDEX muc_rooms_service ON muc_rooms (service, jid);

-- Indexed by room (the primary key) and by user, so that deleting an
-- account finds its entries without reading every room.
CREATE TABLE muc_affiliations (
	room        text COLLATE "C" NOT NULL REFERENCES muc_rooms (jid) ON DELETE CASCADE,
	jid         text COLLATE "C" NOT NULL,
	affiliation text NOT NULL,
	nick        text NOT NULL,
	reason      text NOT NULL,
	PRIMARY KEY (room, jid)
);
CREATE INDEX muc_affiliations_jid ON muc_affiliations (jid, room);
