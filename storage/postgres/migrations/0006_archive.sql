-- The last ID assigned per archive, kept after expiry so IDs keep
-- increasing; its row also serialises a user's appends.
CREATE TABLE archive_last (
	jid  text PRIMARY KEY,
	last bigint NOT NULL
);

-- IDs are microseconds since the epoch: (jid, id) pages one archive by
-- time and id, (jid, with_bare, id) pages it with one party, (id) finds
-- what every archive must expire.
CREATE TABLE archive (
	jid       text NOT NULL,
	id        bigint NOT NULL,
	with_jid  text NOT NULL,
	with_bare text NOT NULL,
	data      bytea NOT NULL,
	PRIMARY KEY (jid, id)
);
CREATE INDEX archive_with ON archive (jid, with_bare, id);
CREATE INDEX archive_id ON archive (id);
