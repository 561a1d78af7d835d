CREATE TABLE kv (
	jid   text NOT NULL,
	key   text NOT NULL,
	value bytea NOT NULL,
	PRIMARY KEY (jid, key)
);
